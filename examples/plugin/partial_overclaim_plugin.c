/* partial_plugin.c's kernel declaring class weights it refuses: UNSUPPORTED
 * inside its own declaration, which `xent verify` rejects. */
#define XENT_PARTIAL_OVERCLAIM
#include "partial_plugin.c"
