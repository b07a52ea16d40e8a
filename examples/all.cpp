#include "examples.hpp"

namespace xent::examples {

std::vector<outcome> run_all() {
  return {guarded(classic, "classic"), guarded(char_lm, "char_lm"), guarded(zero_loss, "zero_loss")};
}

}  // namespace xent::examples
