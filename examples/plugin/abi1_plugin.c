/* The example kernel as a plug-in built for ABI version 1 (before dtypes
 * travelled in the DLTensors): it answers NULL when asked for version 2, as
 * such plug-ins do, and the host asks again for version 1 and loads it as
 * float32-only. */
#define XENT_EXAMPLE_NAME "example_abi1_c"
#define XENT_EXAMPLE_DESCRIPTION "example plug-in built for ABI version 1 (float32 only)"
#define XENT_EXAMPLE_TIER XENT_PLUGIN_TIER_ACCURATE
#define XENT_EXAMPLE_ABI_VERSION 1u

#include "example_plugin.c"
