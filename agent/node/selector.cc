#include "agent/node/selector.h"

#include <fnmatch.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ctxagent {

absl::StatusOr<Selector> Selector::Parse(const std::string& text) {
  std::pair<std::string, std::string> kv = absl::StrSplit(text, absl::MaxSplits(':', 1));
  Selector s;
  s.pattern = kv.second;
  if (kv.first == "binary") {
    s.field = Field::kBinary;
  } else if (kv.first == "cgroup") {
    s.field = Field::kCgroup;
  } else if (kv.first == "namespace") {
    s.field = Field::kNamespace;
  } else if (kv.first == "pod") {
    s.field = Field::kPod;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("selector \"", text,
                     "\": expected binary:GLOB, cgroup:SUBSTRING, namespace:NAME or pod:GLOB"));
  }
  if (s.pattern.empty())
    return absl::InvalidArgumentError(absl::StrCat("selector \"", text, "\" is empty"));
  return s;
}

bool Matches(const Selector& s, const ProcessLabels& p) {
  switch (s.field) {
    case Selector::Field::kBinary:
      return fnmatch(s.pattern.c_str(), p.binary.c_str(), 0) == 0;
    case Selector::Field::kCgroup:
      return absl::StrContains(p.cgroup, s.pattern);
    case Selector::Field::kNamespace:
      return p.namespace_ == s.pattern;
    case Selector::Field::kPod:
      return fnmatch(s.pattern.c_str(), p.pod.c_str(), 0) == 0;
  }
  return false;
}

bool Selected(const std::vector<Selector>& include, const std::vector<Selector>& exclude,
              const ProcessLabels& p) {
  bool in = include.empty();
  for (const Selector& s : include) in = in || Matches(s, p);
  for (const Selector& s : exclude) in = in && !Matches(s, p);
  return in;
}

bool OnlyBinarySelectors(const std::vector<Selector>& include,
                         const std::vector<Selector>& exclude) {
  for (const auto* list : {&include, &exclude}) {
    for (const Selector& s : *list) {
      if (s.field != Selector::Field::kBinary) return false;
    }
  }
  return true;
}

}  // namespace ctxagent
