// Text read from targets (executable names, source paths) is bytes, not necessarily UTF-8: Go
// records the build directory as the file system gave it. Every view passes it through here, so
// that a byte that is not UTF-8 can neither abort a JSON dump nor garble a terminal.
#ifndef CTXAGENT_AGENT_VIEW_UTF8_H_
#define CTXAGENT_AGENT_VIEW_UTF8_H_

#include <string>

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace ctxagent {

// Valid UTF-8 is kept as is; every other byte becomes the four characters \xNN. Chosen over
// U+FFFD because the byte stays readable: a user can still find the file (`ls -b` prints the same).
std::string EscapeInvalidUtf8(absl::string_view s);

// j.dump(indent) with every string and key passed through EscapeInvalidUtf8; never throws.
std::string DumpJson(const nlohmann::json& j, int indent = -1);

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_VIEW_UTF8_H_
