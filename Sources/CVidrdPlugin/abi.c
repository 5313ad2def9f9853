#include "vidrd_plugin.h"

/* SwiftPM needs one source file per C target; the ABI itself is the header. */
const uint32_t vidrd_plugin_abi_version_of_host = VIDRD_PLUGIN_ABI_VERSION;
