#include "agent/lineage/events.h"

#include "absl/strings/str_cat.h"

namespace ctxagent {

SiteId SiteTable::Intern(const Site& site) {
  std::string key = absl::StrCat(site.file, ":", site.line, " ", site.function);
  auto [it, inserted] = index_.try_emplace(std::move(key), static_cast<SiteId>(sites_.size()));
  if (inserted) sites_.push_back(site);
  return it->second;
}

std::string SiteLocation(const Site& site) { return absl::StrCat(site.file, ":", site.line); }

std::string ShortSiteString(const Site& site) {
  const size_t slash = site.file.rfind('/');
  return absl::StrCat(slash == std::string::npos ? site.file : site.file.substr(slash + 1), ":",
                      site.line);
}

std::string SiteString(const Site& site) {
  return absl::StrCat(ShortSiteString(site), " (", site.function, ")");
}

std::string FormatAge(absl::Duration d) {
  return absl::FormatDuration(
      absl::Trunc(d, d >= absl::Seconds(1) ? absl::Seconds(1) : absl::Milliseconds(1)));
}

const char* ContextKindName(ContextKind kind) {
  switch (kind) {
    case ContextKind::kCancel:
      return "cancel";
    case ContextKind::kTimer:
      return "timer";
    case ContextKind::kAfterFunc:
      return "after_func";
    case ContextKind::kUnknown:
      return "unknown";
  }
  return "unknown";
}

const char* RootKindName(RootKind kind) {
  switch (kind) {
    case RootKind::kBackground:
      return "background";
    case RootKind::kWithoutCancel:
      return "without_cancel";
    case RootKind::kCustom:
      return "custom";
  }
  return "unknown";
}

const char* CancelCauseName(CancelCause cause) {
  switch (cause) {
    case CancelCause::kOwnCancel:
      return "own";
    case CancelCause::kParent:
      return "parent";
    case CancelCause::kDeadline:
      return "deadline";
  }
  return "unknown";
}

}  // namespace ctxagent
