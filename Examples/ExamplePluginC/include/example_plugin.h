/* The example plugin has no public headers of its own; it includes vidrd_plugin.h. */
