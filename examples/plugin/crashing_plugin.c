/* A test fixture, not an example to follow: the example plug-in, except that
 * it dereferences NULL when a row has more than 100 classes. `xent verify`
 * must survive it, report the crash (the signal) as a failure, and print the
 * shrunk input that crashes (C = 101). */
#define XENT_EXAMPLE_NAME "example_crashing_c"
#define XENT_EXAMPLE_DESCRIPTION "test fixture: segfaults when C > 100"
#define XENT_EXAMPLE_TIER XENT_PLUGIN_TIER_ACCURATE
#define XENT_EXAMPLE_BEFORE_RUN(C)            \
  do {                                        \
    volatile int* volatile nowhere = 0;       \
    if ((C) > 100) *nowhere = 1;              \
  } while (0)
#include "example_plugin.c"
