/* The record contract is header-only; this unit makes the compiler check its asserts once more
 * with the host's ABI. */
#include "agent_events.h"
