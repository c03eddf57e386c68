// The text forms of net/http/pprof's goroutine endpoint:
//  - debug=2, runtime.Stack(all)'s dump: "goroutine N [state, M minutes]:", each frame the
//    traceback shows (GOTRACEBACK=single: runtime internals hidden, inlined frames as "(...)"), its
//    "\tfile:line +0xoff" line, then "created by F in goroutine P" and its line. Field for field
//    the runtime's, but for the argument words of a frame that is not inlined: the runtime prints
//    the values it finds in registers' spill slots, read here they would be stale, so they are
//    printed as "(...)" too. "locked to thread" and pprof labels are not printed.
//  - debug=1, runtime/pprof's legacy count format: "N @ 0xpc ...", then
//  "#\t0xpc\tfunc+0xoff\tfile:line".
#ifndef CTXAGENT_AGENT_PROFILE_TEXT_FORMAT_H_
#define CTXAGENT_AGENT_PROFILE_TEXT_FORMAT_H_

#include <string>

#include "agent/profile/goroutine_stacks.h"
#include "agent/profile/profile.h"
#include "agent/profile/stack_symbolizer.h"

namespace ctxagent::profile {

// `parent_goid`: the release prints " in goroutine P" (Go 1.21+).
std::string GoroutineDump(const StackSnapshot& snapshot, StackSymbolizer& symbolizer,
                          bool parent_goid);
std::string CountProfileText(const Profile& profile, StackSymbolizer& symbolizer);

}  // namespace ctxagent::profile

#endif  // CTXAGENT_AGENT_PROFILE_TEXT_FORMAT_H_
