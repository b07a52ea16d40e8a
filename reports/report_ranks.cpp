// GCC 12 warns falsely (-Wrestrict) on "literal" + std::string concatenations.
#pragma GCC diagnostic ignored "-Wrestrict"
#include "report_ranks.hpp"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <new>
#include <thread>
#include <type_traits>

#include "inputs.hpp"
#include "npy.hpp"
#include "simd_target.hpp"
#include "xent/error.hpp"
#include "xent/kernel/mpi.hpp"

namespace xent::reports {

using cli::input_error;

failure_note describe_failure(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const rank_failure& f) {
    return {f.status(), f.what()};
  } catch (const input_error& f) {  // the statuses of cli/main.cpp
    return {2, f.what()};
  } catch (const npy::npy_error& f) {
    return {2, f.what()};
  } catch (const std::invalid_argument& f) {  // xent::error among them
    return {2, f.what()};
  } catch (const std::bad_alloc&) {
    return {1, "out of memory"};
  } catch (const std::exception& f) {
    return {1, std::string("internal error: ") + f.what()};
  } catch (...) {
    return {1, "internal error: unknown exception"};
  }
}

std::vector<std::vector<std::size_t>> deal_scenarios(const std::vector<scenario_spec>& scenarios, int ranks) {
  if (ranks < 1) throw std::logic_error("deal_scenarios: no rank");
  std::vector<std::size_t> order(scenarios.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return scenarios[a].elements > scenarios[b].elements;
  });
  std::vector<std::vector<std::size_t>> deal(static_cast<std::size_t>(ranks));
  std::vector<std::int64_t> load(deal.size(), 0);
  for (const std::size_t i : order) {
    const std::size_t r = static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    deal[r].push_back(i);
    load[r] += std::max<std::int64_t>(scenarios[i].elements, 1);
  }
  for (auto& d : deal) std::sort(d.begin(), d.end());
  return deal;
}

namespace {

// The wire format: a magic with a version, then fields in a fixed order,
// numbers as their bytes (the ranks run one build on one architecture).
constexpr char kMagic[] = "xent sweep share 1";
constexpr double kByteOrderProbe = 1.0 + 0x1p-40;

class writer {
 public:
  template <class T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void put(const std::string& s) {
    put(static_cast<std::uint64_t>(s.size()));
    out_ += s;
  }
  void put(const std::optional<std::string>& s) {
    put(static_cast<std::uint8_t>(s ? 1 : 0));
    if (s) put(*s);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class reader {
 public:
  explicit reader(const std::string& in) : in_(in) {}
  template <class T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T));
    T v;
    std::memcpy(&v, in_.data() + at_, sizeof v);
    at_ += sizeof v;
    return v;
  }
  std::string text() {
    const auto n = get<std::uint64_t>();
    need(n);
    std::string s = in_.substr(at_, n);
    at_ += n;
    return s;
  }
  std::optional<std::string> optional_text() {
    if (get<std::uint8_t>() == 0) return std::nullopt;
    return text();
  }
  std::size_t count() {  // a length, bounded by the bytes left (each element takes at least one)
    const auto n = get<std::uint64_t>();
    if (n > in_.size() - at_) malformed();
    return static_cast<std::size_t>(n);
  }
  bool done() const { return at_ == in_.size(); }
  [[noreturn]] static void malformed() {
    throw std::runtime_error("a rank's share of the sweep is malformed (do all ranks run the same build?)");
  }

 private:
  void need(std::uint64_t n) const {
    if (n > in_.size() - at_) malformed();
  }
  const std::string& in_;
  std::size_t at_ = 0;
};

void put_stats(writer& w, const quantity_stats& s) {
  w.put(s.count);
  w.put(s.max);
  w.put(s.p99);
  w.put(s.median);
  w.put(s.mean_bits);
  w.put(s.correctly_rounded);
  w.put(s.special_mismatches);
  w.put(s.worst.position);
  w.put(s.worst.cls);
  w.put(s.worst.got);
  w.put(s.worst.want);
  w.put(s.worst.ulp);
}

quantity_stats get_stats(reader& r) {
  quantity_stats s;
  s.count = r.get<std::int64_t>();
  s.max = r.get<double>();
  s.p99 = r.get<double>();
  s.median = r.get<double>();
  s.mean_bits = r.get<double>();
  s.correctly_rounded = r.get<double>();
  s.special_mismatches = r.get<std::int64_t>();
  s.worst.position = r.get<std::int64_t>();
  s.worst.cls = r.get<std::int64_t>();
  s.worst.got = r.get<double>();
  s.worst.want = r.text();
  s.worst.ulp = r.get<double>();
  return s;
}

void put_cell(writer& w, const cell& c) {
  w.put(c.impl);
  w.put(c.tier);
  w.put(c.scenario);
  w.put(c.dtype);
  w.put(c.outside);
  w.put(c.failure);
  w.put(c.skipped);
  for (const quantity_stats& s : c.q) put_stats(w, s);
  w.put(c.rounded);
  w.put(c.retried);
  w.put(c.exact);
  w.put(c.unresolved);
}

cell get_cell(reader& r) {
  cell c;
  c.impl = r.text();
  c.tier = r.text();
  c.scenario = r.text();
  c.dtype = r.text();
  c.outside = r.optional_text();
  c.failure = r.optional_text();
  c.skipped = r.optional_text();
  for (quantity_stats& s : c.q) s = get_stats(r);
  c.rounded = r.get<std::int64_t>();
  c.retried = r.get<std::int64_t>();
  c.exact = r.get<std::int64_t>();
  c.unresolved = r.get<std::int64_t>();
  return c;
}

void put_info(writer& w, const scenario_info& s) {
  w.put(s.id);
  w.put(s.family);
  w.put(s.description);
  w.put(static_cast<std::uint64_t>(s.shape.size()));
  for (const std::int64_t d : s.shape) w.put(d);
  w.put(s.classes);
  w.put(s.scale);
  w.put(s.seconds);
}

scenario_info get_info(reader& r) {
  scenario_info s;
  s.id = r.text();
  s.family = r.text();
  s.description = r.text();
  s.shape.resize(r.count());
  for (std::int64_t& d : s.shape) d = r.get<std::int64_t>();
  s.classes = r.get<std::int64_t>();
  s.scale = r.get<double>();
  s.seconds = r.get<double>();
  return s;
}

}  // namespace

std::string encode(const sweep_share& s) {
  writer w;
  w.put(std::string(kMagic));
  w.put(kByteOrderProbe);
  w.put(s.seconds);
  w.put(static_cast<std::uint8_t>(s.failure ? 1 : 0));
  if (s.failure) {
    w.put(static_cast<std::int32_t>(s.failure->status));
    w.put(s.failure->message);
  }
  w.put(static_cast<std::uint64_t>(s.indices.size()));
  for (std::size_t k = 0; k < s.indices.size(); ++k) {
    w.put(static_cast<std::uint64_t>(s.indices[k]));
    put_info(w, s.scenarios.at(k));
    w.put(static_cast<std::uint64_t>(s.cells.at(k).size()));
    for (const cell& c : s.cells[k]) put_cell(w, c);
  }
  return w.take();
}

sweep_share decode(const std::string& bytes) {
  reader r(bytes);
  if (r.text() != kMagic || r.get<double>() != kByteOrderProbe) reader::malformed();
  sweep_share s;
  s.seconds = r.get<double>();
  if (r.get<std::uint8_t>() != 0) {
    const int status = r.get<std::int32_t>();
    s.failure = failure_note{status, r.text()};
  }
  const std::size_t n = r.count();
  for (std::size_t k = 0; k < n; ++k) {
    s.indices.push_back(static_cast<std::size_t>(r.get<std::uint64_t>()));
    s.scenarios.push_back(get_info(r));
    std::vector<cell> cells(r.count());
    for (cell& c : cells) c = get_cell(r);
    s.cells.push_back(std::move(cells));
  }
  if (!r.done()) reader::malformed();
  return s;
}

sweep_result merge_shares(std::vector<sweep_share> shares, std::size_t count) {
  for (std::size_t r = 0; r < shares.size(); ++r)
    if (shares[r].failure) {
      std::string m = "rank ";
      m += std::to_string(r);
      m += " failed on its share of the accuracy sweep: ";
      m += shares[r].failure->message;
      throw rank_failure(shares[r].failure->status, m, false);
    }
  sweep_result res;
  res.scenarios.resize(count);
  std::vector<std::vector<cell>> cells(count);
  std::vector<bool> seen(count, false);
  for (auto& s : shares)
    for (std::size_t k = 0; k < s.indices.size(); ++k) {
      const std::size_t i = s.indices[k];
      if (i >= count || seen[i]) throw std::logic_error("the ranks' shares of the sweep overlap or run past its end");
      seen[i] = true;
      res.scenarios[i] = std::move(s.scenarios[k]);
      cells[i] = std::move(s.cells[k]);
    }
  if (std::find(seen.begin(), seen.end(), false) != seen.end())
    throw std::logic_error("the ranks' shares of the sweep leave a scenario out");
  for (auto& c : cells) res.cells.insert(res.cells.end(), c.begin(), c.end());
  return res;
}

std::string sweep_fingerprint(const sweep_options& o) {
  // Three lines: scenarios, implementations, Highway target (compared line by line).
  std::string f = std::to_string(o.scenarios.size()) + " scenarios:";
  for (const auto& s : o.scenarios) {
    f += ' ';
    f += s.id;
  }
  f += "\nimplementations:";
  for (const implementation* i : sweep_implementations(o.impls)) {
    f += ' ';
    f += i->name();
  }
  f += "\nHighway target ";
  f += simd_targets().at(0);  // simd and openmp dispatch to it (pinned by --simd-target, else the best)
  return f;
}

namespace {

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> v;
  std::size_t at = 0;
  for (std::size_t nl; (nl = s.find('\n', at)) != std::string::npos; at = nl + 1) v.push_back(s.substr(at, nl - at));
  v.push_back(s.substr(at));
  return v;
}

std::string clipped(const std::string& s) {
  constexpr std::size_t most = 240;
  return s.size() <= most ? s : s.substr(0, most) + "...";
}

}  // namespace

void agree_on_setup(std::exception_ptr setup_failure, const std::string& fingerprint) {
  // A failed rank sends "F<status> <message>", the others "S<fingerprint>".
  std::string mine;
  if (setup_failure) {
    const failure_note n = describe_failure(setup_failure);
    mine = "F" + std::to_string(n.status) + " " + n.message;
  } else {
    mine = "S" + fingerprint;
  }
  const std::vector<std::string> all = mpi::all_gather(mine);
  if (setup_failure) {
    // The same failure as rank 0's (the same bad option on every rank): rank 0 says it once.
    if (mpi::rank() != 0 && all[0] == mine) {
      const failure_note n = describe_failure(setup_failure);
      throw rank_failure(n.status, n.message, false);
    }
    std::rethrow_exception(setup_failure);
  }
  for (std::size_t r = 0; r < all.size(); ++r) {
    const std::string& a = all[r];
    if (!a.empty() && a[0] == 'F') {
      const std::size_t space = a.find(' ');
      const int status = std::stoi(a.substr(1, space - 1));
      throw rank_failure(status, "rank " + std::to_string(r) + " failed before the sweep: " + a.substr(space + 1),
                         false);
    }
  }
  for (std::size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0]) {
      const auto mine0 = lines_of(all[0].substr(1)), theirs = lines_of(all[r].substr(1));
      std::size_t k = 0;
      while (k + 1 < mine0.size() && k < theirs.size() && mine0[k] == theirs[k]) ++k;
      std::string m = "rank ";
      m += std::to_string(r);
      m += " would measure something else than rank 0 (every rank must run the same build with the same options; "
           "on hosts with different Highway targets, pin one with --simd-target): rank 0 has ";
      m += clipped(mine0[k]);
      m += "; rank ";
      m += std::to_string(r);
      m += " has ";
      m += k < theirs.size() ? clipped(theirs[k]) : "nothing";
      throw rank_failure(2, m, false);
    }
}

std::optional<sweep_result> run_sweep_over_ranks(const sweep_options& o, std::vector<std::size_t>* per_rank) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const int me = mpi::rank();
  const auto deal = deal_scenarios(o.scenarios, mpi::size());
  sweep_share share;
  std::exception_ptr failure;
  try {
    sweep_options mine = o;
    mine.scenarios.clear();
    for (const std::size_t i : deal[static_cast<std::size_t>(me)]) mine.scenarios.push_back(o.scenarios[i]);
    if (!mine.scenarios.empty()) {
      sweep_result r = run_sweep(mine);
      // Cells are scenario-major (run_sweep): one per implementation that
      // computes the scenario's dtype.
      auto next = r.cells.begin();
      for (std::size_t k = 0; k < r.scenarios.size(); ++k) {
        share.indices.push_back(deal[static_cast<std::size_t>(me)][k]);
        const auto end = std::find_if(next, r.cells.end(), [&](const cell& c) { return c.scenario != r.scenarios[k].id; });
        share.cells.emplace_back(next, end);
        next = end;
        share.scenarios.push_back(std::move(r.scenarios[k]));
      }
      if (next != r.cells.end()) throw std::logic_error("the sweep's cells are not per scenario");
      share.seconds = r.seconds;
    }
  } catch (...) {
    failure = std::current_exception();
    share = {};
    share.failure = describe_failure(failure);
  }
  // Sent whether or not the share succeeded: rank 0 waits for every rank.
  std::vector<std::string> bytes = mpi::gather_to_root(encode(share));
  if (me != 0) {
    if (failure) std::rethrow_exception(failure);
    return std::nullopt;
  }
  if (failure) std::rethrow_exception(failure);
  std::vector<sweep_share> shares;
  for (const auto& b : bytes) shares.push_back(decode(b));
  if (per_rank) {
    per_rank->clear();
    for (const auto& s : shares) per_rank->push_back(s.indices.size());
  }
  sweep_result all = merge_shares(std::move(shares), o.scenarios.size());
  all.seconds = std::chrono::duration<double>(clock::now() - start).count();
  return all;
}

unsigned sweep_threads_per_rank() {
  const unsigned hardware = std::max(1u, std::thread::hardware_concurrency());
  cpu_set_t set;
  CPU_ZERO(&set);
  unsigned allowed = hardware;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) allowed = static_cast<unsigned>(std::max(1, CPU_COUNT(&set)));
  if (allowed < hardware) return allowed;  // bound by mpirun (or taskset): these CPUs are this rank's
  return std::max(1u, hardware / static_cast<unsigned>(std::max(1, mpi::ranks_on_this_host())));
}

}  // namespace xent::reports
