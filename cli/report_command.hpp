// The options of `xent report` (the engine is reports/report.hpp).
#pragma once

#include "report.hpp"

namespace CLI {
class App;
}

namespace xent::cli {

CLI::App* add_report_command(CLI::App& app, reports::report_args& args);

}  // namespace xent::cli
