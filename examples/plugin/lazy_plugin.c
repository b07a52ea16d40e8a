/* The example plug-in with a planted bug: the loss (reduction none) and the
 * gradient of ignored rows are never written -- the kernel trusts the caller
 * to pass zeroed buffers. Every value it does write is right, so on zeroed
 * buffers it looks perfect; on a `torch.empty` buffer or reused memory the
 * ignored rows hold garbage. `xent verify` poisons every output buffer before
 * a call and must reject it (tested by ctest). */
#define XENT_EXAMPLE_SKIP_IGNORED_WRITES
#define XENT_EXAMPLE_NAME "example_lazy_c"
#define XENT_EXAMPLE_DESCRIPTION "example plug-in with a planted bug: ignored rows left unwritten"
#define XENT_EXAMPLE_TIER XENT_PLUGIN_TIER_ACCURATE
#include "example_plugin.c"
