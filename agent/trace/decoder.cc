#include "agent/trace/decoder.h"

#include <elf.h>
#include <time.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace ctxagent {
namespace {

bool InContextPackage(absl::string_view fn) { return absl::StartsWith(fn, "context."); }

// Seconds from year 1 to 1885 and to 1970, as Go's time package counts them.
constexpr int64_t kWallToInternal = (1884LL * 365 + 1884 / 4 - 1884 / 100 + 1884 / 400) * 86400;
constexpr int64_t kUnixToInternal = (1969LL * 365 + 1969 / 4 - 1969 / 100 + 1969 / 400) * 86400;

}  // namespace

EventClock::EventClock() {
  timespec mono, real;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  base_ = absl::TimeFromTimespec(real) - absl::DurationFromTimespec(mono);
}

std::string ReceiverType(absl::string_view function) {
  size_t dot = function.rfind('.');
  if (dot == absl::string_view::npos) return std::string(function);
  absl::string_view recv = function.substr(0, dot);  // "context.(*cancelCtx)" or "context.emptyCtx"
  size_t open = recv.find("(*");
  if (open != absl::string_view::npos && absl::EndsWith(recv, ")")) {
    return absl::StrCat("*", recv.substr(0, open), recv.substr(open + 2, recv.size() - open - 3));
  }
  return std::string(recv);
}

absl::Time GoTimeToAbsl(uint64_t wall, int64_t ext) {
  constexpr uint64_t kHasMonotonic = 1ull << 63;
  int64_t nsec = static_cast<int64_t>(wall & ((1ull << 30) - 1));
  int64_t sec =
      (wall & kHasMonotonic) ? static_cast<int64_t>((wall << 1) >> 31) + kWallToInternal : ext;
  return absl::FromUnixSeconds(sec - kUnixToInternal) + absl::Nanoseconds(nsec);
}

Decoder::Decoder(const symbols::GoBinary& bin, const Process& process, uint64_t bias,
                 SiteTable& sites)
    : bin_(bin), process_(process), bias_(bias), sites_(sites) {
  const auto [start, end] = bin.elf().ImageRange();
  image_start_ = start + bias;
  image_end_ = end + bias;
}

const Decoder::PcInfo& Decoder::Lookup(uint64_t pc) {
  auto it = pcs_.find(pc);
  if (it != pcs_.end()) return it->second;
  PcInfo info{"?", kNoSite, kNoSite};
  // A return address names the instruction after the call: step back into the call.
  auto frames = bin_.pclntab().Symbolize(pc - bias_ - 1);
  if (frames.ok() && !frames->empty()) {
    info.function = frames->front().function;
    info.site =
        sites_.Intern(Site{frames->front().function, frames->front().file, frames->front().line});
    for (const auto& f : *frames) {
      if (!InContextPackage(f.function)) {
        info.user_site = sites_.Intern(Site{f.function, f.file, f.line});
        break;
      }
    }
  }
  return pcs_.emplace(pc, std::move(info)).first->second;
}

SiteId Decoder::FirstUserSite(const __u64* frames, uint32_t n, uint32_t from) {
  for (uint32_t i = from; i < n; ++i) {
    SiteId s = Lookup(frames[i]).user_site;
    if (s != kNoSite) return s;
  }
  return kNoSite;
}

std::string Decoder::ItabType(uint64_t itab) {
  if (itab == 0) return "";
  auto it = itabs_.find(itab);
  if (it != itabs_.end()) return it->second;
  // itab{inter, _type, hash uint32, _ [4]byte, fun [N]uintptr}: a method of the dynamic type names
  // the type even in stripped binaries. The linker replaces methods nothing calls with
  // runtime.unreachableMethod, so look at the first few (Context has four).
  std::string type;
  uint64_t fun[4] = {};
  if (process_.Read(itab + bin_.offsets().itab_fun, fun, sizeof(fun)).ok()) {
    for (uint64_t pc : fun) {
      auto f = bin_.pclntab().FunctionForPC(pc - bias_);
      if (!f.ok()) break;
      if (absl::StartsWith(f->name, "runtime.")) continue;
      type = ReceiverType(f->name);
      break;
    }
  }
  itabs_.emplace(itab, type);
  return type;
}

SiteId Decoder::BlockingSite(const std::vector<uint64_t>& stack) {
  for (uint64_t pc : stack) {
    auto frames = bin_.pclntab().Symbolize(pc - bias_ - 1);
    if (!frames.ok()) continue;
    for (const auto& f : *frames) {
      // The wait primitives' own frames (time.Sleep is the runtime's, by linkname).
      if (absl::StartsWith(f.function, "runtime.") || absl::StartsWith(f.function, "internal/") ||
          absl::StartsWith(f.function, "sync.") || f.function == "time.Sleep") {
        continue;
      }
      return sites_.Intern(Site{f.function, f.file, f.line});
    }
  }
  return kNoSite;
}

std::string Decoder::FunctionName(uint64_t pc) {
  auto f = bin_.pclntab().FunctionForPC(pc - bias_);
  return f.ok() ? f->name : "?";
}

ParentLink::Type Decoder::ClassifyItab(uint64_t itab) {
  std::string t = ItabType(itab);
  if (t == "*context.cancelCtx" || t == "*context.timerCtx" || t == "*context.afterFuncCtx") {
    return ParentLink::Type::kCancelable;
  }
  // Value types reach an itab through their pointer-receiver wrappers: accept both spellings.
  absl::string_view v = t;
  absl::ConsumePrefix(&v, "*");
  if (v == "context.valueCtx" || v == "context.stopCtx") return ParentLink::Type::kValue;
  if (v == "context.withoutCancelCtx") return ParentLink::Type::kWithoutCancel;
  if (v == "context.emptyCtx" || v == "context.backgroundCtx" || v == "context.todoCtx") {
    return ParentLink::Type::kBackground;
  }
  return ParentLink::Type::kOther;
}

const Decoder::StackInfo& Decoder::Stack(const __u64* frames, uint32_t n) {
  // Keyed by the frames the probe always sends; a repeated site arrives with only those.
  StackKey key{frames[0], n > 1 ? frames[1] : 0, n > 2 ? frames[2] : 0};
  auto it = stacks_.find(key);
  if (it != stacks_.end()) return it->second;
  StackInfo info;
  info.creation_site = FirstUserSite(frames, n, 0);
  // Through the context package's own frames: a parent's cancel loop, or the goroutine / AfterFunc
  // that propagateCancel set up for a foreign parent, means the cancellation came from above.
  uint32_t i = 0;
  for (; i < n; ++i) {
    const std::string& fn = Lookup(frames[i]).function;
    if (absl::StartsWith(fn, "context.(*cancelCtx).cancel") ||
        absl::StrContains(fn, "propagateCancel.func")) {
      info.from_parent = true;
      break;
    }
    if (!InContextPackage(fn)) break;
  }
  if (!info.from_parent) info.cancel_site = FirstUserSite(frames, n, i);
  // A short stack cannot say more later; a full one is final. Either way it is kept.
  return stacks_.emplace(key, info).first->second;
}

CancelCause Decoder::ClassifyCancel(const __u64* frames, uint32_t n, uint64_t err_itab,
                                    SiteId* site) {
  const StackInfo& stack = Stack(frames, n);
  *site = kNoSite;
  if (stack.from_parent) return CancelCause::kParent;
  // The timer (and a deadline already past at creation) cancels with DeadlineExceeded; a CancelFunc
  // with Canceled. (A zero-size type's itab points at the pointer-receiver wrapper on older
  // releases.)
  const std::string err_type = ItabType(err_itab);
  absl::string_view err = err_type;
  absl::ConsumePrefix(&err, "*");
  if (err == "context.deadlineExceededError") return CancelCause::kDeadline;
  *site = stack.cancel_site;
  return CancelCause::kOwnCancel;
}

std::vector<uint64_t> Decoder::CapturedContexts(const __u64* words, bool* uncancelable) {
  // A captured context.Context is an {itab, data} pair among the closure's words. Matching bare
  // words against context addresses would also match any pointer into memory the GC has reused.
  std::vector<uint64_t> out;
  for (int i = 0; i + 1 < GO_CAPTURE_WORDS; ++i) {
    uint64_t itab = words[i], data = words[i + 1];
    // Itabs of compile-time conversions live in the executable's image; anything else is not one
    // (and must not cost a memory read or a cache entry).
    if (itab < image_start_ || itab >= image_end_) continue;
    // Through WithValue layers to the context they wrap (each keeps its parent at +0).
    for (int depth = 0; depth < 4 && itab != 0; ++depth) {
      ParentLink::Type t = ClassifyItab(itab);
      if (t == ParentLink::Type::kCancelable) {
        out.push_back(data);
        break;
      }
      // A value chain ending at Background, or WithoutCancel (whose purpose is the cut): the
      // spawner handed over a context nothing can cancel. A bare Background is a worker's own root.
      if (uncancelable != nullptr && (t == ParentLink::Type::kWithoutCancel ||
                                      (t == ParentLink::Type::kBackground && depth > 0))) {
        *uncancelable = true;
      }
      if (t != ParentLink::Type::kValue) break;
      uint64_t next[2] = {0, 0};
      if (!process_.Read(data, next, sizeof(next)).ok()) break;
      itab = next[0];
      data = next[1];
    }
  }
  return out;
}

absl::StatusOr<DecodedEvent> Decoder::Decode(const ctx_event& raw, const EventClock& clock) {
  absl::Time t = clock.ToTime(raw.ktime_ns);
  switch (raw.type) {
    case EV_CTX_CREATE: {
      ContextCreated e;
      e.time = t;
      e.goid = raw.goid;
      e.g = raw.g;
      e.addr = raw.create.ctx;
      std::string kind = ItabType(raw.create.child_itab);
      e.kind = kind == "*context.cancelCtx"      ? ContextKind::kCancel
               : kind == "*context.timerCtx"     ? ContextKind::kTimer
               : kind == "*context.afterFuncCtx" ? ContextKind::kAfterFunc
                                                 : ContextKind::kUnknown;
      if (e.kind == ContextKind::kTimer) {
        e.deadline = GoTimeToAbsl(raw.create.deadline_wall, raw.create.deadline_ext);
      }
      for (int i = 0; i < CTX_PARENT_CHAIN; ++i) {
        uint64_t itab = raw.create.parent[i][0];
        if (itab == 0) break;
        ParentLink link{raw.create.parent[i][1], ClassifyItab(itab)};
        e.parents.push_back(link);
        // Wrappers are looked through, and so is a custom Context that keeps its parent Context
        // at +0 (`struct{ context.Context; user string }`) when that word names a context type.
        const uint64_t next = i + 1 < CTX_PARENT_CHAIN ? raw.create.parent[i + 1][0] : 0;
        if (link.type == ParentLink::Type::kOther && next != 0 &&
            ClassifyItab(next) != ParentLink::Type::kOther) {
          continue;
        }
        if (link.type != ParentLink::Type::kValue) break;
      }
      uint32_t n = std::min<uint32_t>(raw.create.nframes, CTX_MAX_FRAMES);
      e.site = Stack(raw.create.frames, n).creation_site;
      return e;
    }
    case EV_CTX_CANCEL: {
      ContextCancelled e;
      e.time = t;
      e.goid = raw.goid;
      e.addr = raw.cancel.ctx;
      uint32_t n = std::min<uint32_t>(raw.cancel.nframes, CTX_MAX_FRAMES);
      e.cause = ClassifyCancel(raw.cancel.frames, n, raw.cancel.err_itab, &e.site);
      // Go 1.20's timerCtx holds a *cancelCtx at +0: its +8 is no parent word.
      if (!bin_.offsets().timerctx_cancelctx_is_ptr) e.parent_word = raw.cancel.parent_data;
      return e;
    }
    case EV_GO_CREATE: {
      GoroutineCreated e;
      e.time = t;
      e.goid = raw.goid;
      e.g = raw.g;
      e.parent_goid = raw.go_create.parent_goid;
      // The `go` statement itself, even inside a library: that is where the goroutine came from.
      if (raw.go_create.gopc != 0) e.go_site = GoSite(raw.go_create.gopc);
      e.start_function = FunctionName(raw.go_create.startpc);
      e.captured = CapturedContexts(raw.go_create.words, &e.captured_uncancelable);
      return e;
    }
    case EV_GO_EXIT:
      return GoroutineExited{t, raw.goid};
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown event type ", raw.type));
}

}  // namespace ctxagent
