// The context block of `xent report`: machine, compiler, library versions,
// git revision and date, as ordered (key, value) pairs.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace xent::reports {

using context_list = std::vector<std::pair<std::string, std::string>>;

// bench_context: the benchmark JSON's context (LibTorch and Google Benchmark
// versions come from there), or null.
context_list report_context(const nlohmann::ordered_json& bench_context);

}  // namespace xent::reports
