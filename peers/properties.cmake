# Included at the end of properties/CMakeLists.txt: the property suite on
# external implementations. With LibTorch, torch_peer_test runs every property
# on "torch" at its declared `standard` tier (one ctest entry each; a known
# PyTorch deviation is a SKIPPED test carrying its measured counterexample),
# records what it misses at stricter tiers, and checks the semantic agreement
# of `stable` and `torch`. (Not in property_test: there a known deviation
# could only be a failure.)
if(NOT TARGET xent_torch_autoregister)
  return()
endif()
add_executable(torch_peer_test ${PROJECT_SOURCE_DIR}/properties/torch_peer_test.cpp)
target_link_libraries(torch_peer_test PRIVATE xent_properties xent_torch_autoregister GTest::gtest_main
                                              xent_warnings)
gtest_discover_tests(torch_peer_test
  DISCOVERY_TIMEOUT 60 NO_PRETTY_VALUES
  PROPERTIES LABELS "property" TIMEOUT 900
             ENVIRONMENT "RC_PARAMS=seed=${XENT_PROPERTY_SEED}")
