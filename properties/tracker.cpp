#include "tracker.hpp"

#include <cmath>
#include <sstream>

namespace xent::props {

tracker& tracker::get() {
  static tracker t;
  return t;
}

void tracker::reset() { *this = tracker(); }

void tracker::note(const std::string& what, double ulps, const test_case& c, const std::string& detail) {
  worst& w = (outside_ ? outside_tab_ : inside_tab_)[what];
  ++w.count;
  // NaN errors do not happen (ulp_error maps mismatches to +inf); keep the first worst.
  if (ulps > w.ulps) {
    w.ulps = ulps;
    w.repro = c.repro();
    if (w.repro.size() > 400) w.repro = w.repro.substr(0, 400) + " …";
    w.detail = detail;
  }
}

void tracker::record_outside(const test_case& c, const std::vector<std::string>& broke) {
  ++outside_cases_;
  if (broke.empty()) return;
  ++outside_broken_;
  if (outside_example_.empty()) {
    outside_example_ = c.shape_tag() + " (" + outside_.value_or("?") + "): " + broke.front();
    if (outside_example_.size() > 600) outside_example_ = outside_example_.substr(0, 600) + " …";
  }
}

void tracker::record_unsupported(const std::string& message) {
  if (unsupported_cases_++ == 0) first_unsupported_ = message.size() > 600 ? message.substr(0, 600) + " …" : message;
}

std::string tracker::summary() const {
  std::ostringstream s;
  auto table = [&](const std::map<std::string, worst>& tab, const char* title) {
    for (const auto& [what, w] : tab)
      s << "  " << title << " worst " << what << ": " << w.ulps << " ulp over " << w.count
        << " values (" << w.detail << ") at " << w.repro << '\n';
  };
  table(inside_tab_, "[inside domain]");
  if (unsupported_cases_ > 0)
    s << "  [unsupported] " << unsupported_cases_ << " cases skipped (not passes); first: " << first_unsupported_
      << '\n';
  if (outside_cases_ > 0) {
    s << "  [outside domain] " << outside_cases_ << " cases recorded (discarded, not passes), broke in "
      << outside_broken_ << (outside_example_.empty() ? "" : "; e.g. " + outside_example_) << '\n';
    table(outside_tab_, "[outside domain]");
  }
  return s.str();
}

}  // namespace xent::props
