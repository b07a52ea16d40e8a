// The `xent` command: list, check, report, verify. Every failure ends in one
// line `xent: error: ...` on stderr and a non-zero status; with --json, stdout
// also carries exactly one JSON document, {"error": {"argument", "message"}}.
// Nothing escapes main.
//
// Exit statuses (all commands):
//   0  success (check: every checked result within its bound; verify: accepted)
//   1  a bound exceeded or a verdict failed (check --max-ulp/--tier, verify
//      REJECTED, report --check-baseline), an internal error, out of memory
//   2  usage or input error (unknown option, unreadable or malformed file,
//      invalid shapes or options), reported before anything is computed
#include <CLI/CLI.hpp>

#include <cstring>
#include <fstream>
#include <iostream>
#include <new>
#include <nlohmann/json.hpp>

#include "check.hpp"
#include "inputs.hpp"
#include "list.hpp"
#include "npy.hpp"
#include "registry.hpp"
#include "report_ranks.hpp"
#include "report_command.hpp"
#include "verify.hpp"
#ifdef XENT_HAVE_TORCH_PEER
#include "torch_implementation.hpp"
#endif
#include "xent/error.hpp"
#include "xent/kernel/mpi.hpp"

namespace {

// One line: the messages we print must not spill over several lines.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

bool json_mode = false;

// Under mpirun every rank runs the command (the mpi implementation needs them
// all) but only rank 0 prints; the others keep their errors, named by rank.
std::ostream* error_stream = &std::cerr;
std::string rank_prefix;
std::ofstream discard;
void quiet_unless_rank_zero() {
  if (!xent::mpi::launched() || xent::mpi::rank() == 0) return;
  static std::ostream saved_err(std::cerr.rdbuf());
  error_stream = &saved_err;
  rank_prefix = "rank " + std::to_string(xent::mpi::rank()) + ": ";
  discard.open("/dev/null");
  std::cout.rdbuf(discard.rdbuf());
  std::cerr.rdbuf(discard.rdbuf());
}

int fail(int status, const std::string& message, const std::string& argument = "") {
  std::cout.flush();
  *error_stream << "xent: error: " << rank_prefix << one_line(message) << "\n";
  if (json_mode) {
    nlohmann::ordered_json j;
    j["error"] = {{"argument", argument.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(argument)},
                  {"message", one_line(message)},
                  {"status", status}};
    std::cout << j.dump() << "\n" << std::flush;
  }
  return status;
}

// The option CLI11 complains about, when its message names one.
std::string parse_error_argument(const std::string& what) {
  const std::size_t at = what.find("--");
  if (at == std::string::npos) return "";
  std::size_t end = at + 2;
  while (end < what.size() && (std::isalnum(static_cast<unsigned char>(what[end])) || what[end] == '-')) ++end;
  return what.substr(at, end - at);
}

std::string version_text() {
  std::string v = "xent " XENT_VERSION_STRING;
#ifdef XENT_HAVE_TORCH_PEER
  v += " (peer: LibTorch " + xent::peers::torch_version() + ")";
#endif
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  using xent::cli::exit_bound_exceeded;
  using xent::cli::exit_usage;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--json") == 0) json_mode = true;

  CLI::App app{
      "xent: cross-entropy loss with exactly PyTorch's nn.CrossEntropyLoss semantics\n"
      "Exit status: 0 success; 1 a bound exceeded or a verdict failed (check --max-ulp/--tier, verify "
      "REJECTED, report --check-baseline) or an internal error; 2 usage or input error (nothing computed)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", version_text());
  xent::cli::list_args list_args;
  xent::cli::check_args check_args;
  xent::reports::report_args report_args;
  CLI::App* list = xent::cli::add_list_command(app, list_args);
  CLI::App* check = xent::cli::add_check_command(app, check_args);
  CLI::App* report = xent::cli::add_report_command(app, report_args);
  xent::cli::verify_args verify_args;
  CLI::App* verify = xent::cli::add_verify_command(app, verify_args);

  // CLI11 reports an unknown command as "A subcommand is required": name it.
  if (argc > 1 && argv[1][0] != '-') {
    const std::string first = argv[1];
    if (first != "list" && first != "check" && first != "report" && first != "verify")
      return fail(exit_usage, "unknown command '" + first + "' (commands: list, check, report, verify)");
  }
  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForVersion&) {
      std::cout << version_text() << "\n";
      return 0;
    } catch (const CLI::ParseError& e) {
      return fail(exit_usage, std::string(e.what()) + " (see xent --help)", parse_error_argument(e.what()));
    }
    // One registry for every command: ours, the peers (LibTorch), plug-ins.
    if (!(*report && report_args.no_torch)) xent::cli::register_peers();
    quiet_unless_rank_zero();
    if (*list) return xent::cli::run_list(list_args);
    if (*check) return xent::cli::run_check(check_args);
    // Plug-ins join the registry before the sweep (under mpirun, on every
    // rank, among the checks the ranks agree on).
    if (*report) return xent::reports::run_report(report_args, [&] { xent::cli::load_plugins(report_args.plugins); });
    if (*verify) return xent::cli::run_verify(verify_args);
    return fail(exit_usage, "no command given (see xent --help)");
  } catch (const xent::reports::rank_failure& e) {
    // Another rank's failure is reported by rank 0; the others just end.
    if (!e.own() && xent::mpi::rank() != 0) return e.status();
    return fail(e.status(), e.what());
  } catch (const xent::error& e) {
    return fail(exit_usage, e.what(), e.argument());
  } catch (const xent::npy::npy_error& e) {
    return fail(exit_usage, e.what());
  } catch (const xent::cli::input_error& e) {
    return fail(exit_usage, e.what(), e.argument());
  } catch (const std::invalid_argument& e) {
    return fail(exit_usage, e.what());
  } catch (const std::bad_alloc&) {
    return fail(exit_bound_exceeded, "out of memory");
  } catch (const std::exception& e) {
    return fail(exit_bound_exceeded, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(exit_bound_exceeded, "internal error: unknown exception");
  }
}
