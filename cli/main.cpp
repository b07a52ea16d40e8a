// The `xent` command: list, check, report. Every failure ends in one line
// `xent: error: ...` and a non-zero status (2 for usage and input errors);
// nothing escapes main.
#include <CLI/CLI.hpp>

#include <iostream>
#include <new>

#include "check.hpp"
#include "inputs.hpp"
#include "list.hpp"
#include "npy.hpp"
#include "report.hpp"
#include "verify.hpp"
#ifdef XENT_HAVE_TORCH_PEER
#include "torch_implementation.hpp"
#endif
#include "xent/error.hpp"

namespace {

// One line: the messages we print must not spill over several lines.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

int fail(int status, const std::string& message) {
  std::cout.flush();
  std::cerr << "xent: error: " << one_line(message) << "\n";
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  constexpr int usage_error = 2;
  CLI::App app{"xent: cross-entropy loss with exactly PyTorch's nn.CrossEntropyLoss semantics"};
  app.require_subcommand(1);
  xent::cli::list_args list_args;
  xent::cli::check_args check_args;
  xent::cli::report_args report_args;
  CLI::App* list = xent::cli::add_list_command(app, list_args);
  CLI::App* check = xent::cli::add_check_command(app, check_args);
  CLI::App* report = xent::cli::add_report_command(app, report_args);
  xent::cli::verify_args verify_args;
  CLI::App* verify = xent::cli::add_verify_command(app, verify_args);

  // CLI11 reports an unknown command as "A subcommand is required": name it.
  if (argc > 1 && argv[1][0] != '-') {
    const std::string first = argv[1];
    if (first != "list" && first != "check" && first != "report" && first != "verify")
      return fail(usage_error, "unknown command '" + first + "' (commands: list, check, report, verify)");
  }
  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
      return app.exit(e);
    } catch (const CLI::ParseError& e) {
      return fail(usage_error, std::string(e.what()) + " (see xent --help)");
    }
    if (*list) return xent::cli::run_list(list_args);
    if (*check) return xent::cli::run_check(check_args);
    if (*report) {
      // External implementations join the registry before the sweep.
      xent::cli::load_plugins(report_args.plugins);
#ifdef XENT_HAVE_TORCH_PEER
      if (!report_args.no_torch) xent::peers::register_torch();
#endif
      return xent::cli::run_report(report_args);
    }
    if (*verify) return xent::cli::run_verify(verify_args);
    return fail(usage_error, "no command given (see xent --help)");
  } catch (const xent::error& e) {
    return fail(usage_error, e.what());
  } catch (const xent::npy::npy_error& e) {
    return fail(usage_error, e.what());
  } catch (const xent::cli::input_error& e) {
    return fail(usage_error, e.what());
  } catch (const std::invalid_argument& e) {
    return fail(usage_error, e.what());
  } catch (const std::bad_alloc&) {
    return fail(1, "out of memory");
  } catch (const std::exception& e) {
    return fail(1, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(1, "internal error: unknown exception");
  }
}
