/* partial_plugin.c's kernel without a declaration: `xent verify` tries every
 * case and skips and counts the ones it refuses. */
#define XENT_PARTIAL_UNDECLARED
#include "partial_plugin.c"
