#include "agent/view/utf8.h"

#include <cstdint>

#include "absl/strings/str_format.h"

namespace ctxagent {
namespace {

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlong forms, no surrogates,
// nothing above U+10FFFF), or 0.
size_t SequenceLength(absl::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  const auto cont = [&](size_t k) { return i + k < s.size() && (b(k) & 0xc0) == 0x80; };
  const uint8_t c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    if ((c == 0xe0 && b(1) < 0xa0) || (c == 0xed && b(1) > 0x9f)) return 0;
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if ((c == 0xf0 && b(1) < 0x90) || (c == 0xf4 && b(1) > 0x8f)) return 0;
    return 4;
  }
  return 0;
}

bool IsValid(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

bool NeedsEscape(const nlohmann::json& j) {
  if (j.is_string()) return !IsValid(j.get_ref<const std::string&>());
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      if (!IsValid(k) || NeedsEscape(v)) return true;
    }
  } else if (j.is_array()) {
    for (const auto& v : j) {
      if (NeedsEscape(v)) return true;
    }
  }
  return false;
}

nlohmann::json Escaped(const nlohmann::json& j) {
  if (j.is_string()) return EscapeInvalidUtf8(j.get_ref<const std::string&>());
  if (j.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [k, v] : j.items()) out[EscapeInvalidUtf8(k)] = Escaped(v);
    return out;
  }
  if (j.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& v : j) out.push_back(Escaped(v));
    return out;
  }
  return j;
}

}  // namespace

std::string EscapeInvalidUtf8(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (size_t n = SequenceLength(s, i); n > 0) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      absl::StrAppendFormat(&out, "\\x%02x", static_cast<uint8_t>(s[i]));
      ++i;
    }
  }
  return out;
}

std::string DumpJson(const nlohmann::json& j, int indent) {
  // `replace` only as a last guarantee: after escaping there is nothing left to replace.
  constexpr auto kNeverThrow = nlohmann::json::error_handler_t::replace;
  if (!NeedsEscape(j)) return j.dump(indent, ' ', false, kNeverThrow);
  return Escaped(j).dump(indent, ' ', false, kNeverThrow);
}

}  // namespace ctxagent
