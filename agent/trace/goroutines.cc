#include "agent/trace/goroutines.h"

#include <algorithm>
#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "agent/trace/cancel_ctx.h"
#include "symbols/go_facts.h"
#include "symbols/go_status.h"
#include "symbols/status_macros.h"

namespace ctxagent {
namespace {

// A select has one sudog per case; a longer chain is a torn read.
constexpr int kMaxSudogs = 128;
// The runtime's maxstacksize on amd64: a live g with a larger stack is not a g.
constexpr uint64_t kMaxStack = uint64_t{1} << 30;
// allgs entries that are not goroutines, tolerated beyond as many as are (the runtime never lists
// anything else, but a read may race with a grown array); more is a corrupt list.
constexpr uint64_t kMaxGarbage = 64;
// What a seen g pointer costs in the set that refuses duplicates.
constexpr uint64_t kSeenBytes = 16;

uint64_t Word(const uint8_t* p, int32_t off) {
  uint64_t v = 0;
  if (off >= 0) memcpy(&v, p + off, 8);
  return v;
}

// The runtime's traceback hides goroutines started in package runtime, except these.
bool IsSystem(const std::string& start_function) {
  return absl::StartsWith(start_function, "runtime.") && start_function != "runtime.main" &&
         start_function != "runtime.corostart" && start_function != "runtime.handleAsyncEvent";
}

// Wait reasons of channel operations: "chan receive", "chan send", "select", and their "(durable)"
// / "(synctest)" forms; not "select (no cases)" or the nil-channel waits.
bool ParkedOnChannels(const std::string& state) {
  if (absl::StrContains(state, "nil chan") || state == "select (no cases)") return false;
  return absl::StartsWith(state, "chan ") || absl::StartsWith(state, "select");
}

// Wait reasons of the sync primitives whose sudog the runtime puts on g.waiting (1.26+).
bool ParkedOnSync(const std::string& state) { return absl::StartsWith(state, "sync."); }

}  // namespace

GoroutineReader::GoroutineReader(const symbols::GoBinary& bin, const Process& process,
                                 uint64_t bias, Decoder& decoder, const EventClock& clock,
                                 uint64_t max_memory)
    : bin_(bin),
      process_(process),
      bias_(bias),
      decoder_(decoder),
      clock_(clock),
      max_memory_(max_memory),
      sync_on_g_(symbols::RuntimeFactsForVersion(bin.build_info().version)
                     .value_or(symbols::GoRuntimeFacts{})
                     .sync_waits_on_g != 0) {}

void GoroutineReader::ReadMany(std::vector<Process::ReadRequest>& requests) {
  if (requests.empty()) return;
  cost_.syscalls += (requests.size() + 1023) / 1024;
  cost_.regions += requests.size();
  for (const auto& r : requests) cost_.bytes += r.len;
  process_.ReadMany(requests);
}

std::vector<GoroutineState> GoroutineReader::ReadGs(const std::vector<uint64_t>& gs,
                                                    const std::vector<uint64_t>& goids,
                                                    uint64_t* implausible) {
  const symbols::GoOffsets& o = bin_.offsets();
  std::vector<GoroutineState> out(gs.size());
  if (o.g_goid < 0 || o.g_atomicstatus < 0 || o.g_waitreason < 0 || o.GReadSpan() <= 0) return out;
  const size_t len = static_cast<size_t>(o.GReadSpan());  // one read per g covers every field
  // In chunks through one buffer kept between reads: a buffer for every g (40 MiB at 100k) was
  // zeroed and faulted in afresh at each read, a third of the daemon's CPU on a paravirtualised VM.
  const size_t chunk = std::min(gs.size(), kGChunk);
  if (g_buffer_.size() < chunk * len) g_buffer_.resize(chunk * len);
  std::vector<Process::ReadRequest> reads;
  reads.reserve(chunk);
  std::vector<uint64_t> waiting(gs.size(), 0);
  const symbols::GoVersion& version = bin_.build_info().version;
  for (size_t first = 0; first < gs.size(); first += kGChunk) {
    const size_t n = std::min(kGChunk, gs.size() - first);
    reads.clear();
    for (size_t k = 0; k < n; ++k) reads.push_back({gs[first + k], &g_buffer_[k * len], len});
    ReadMany(reads);
    for (size_t k = 0; k < n; ++k) {
      const size_t i = first + k;
      GoroutineState& s = out[i];
      s.g = gs[i];
      const uint8_t* p = &g_buffer_[k * len];
      uint32_t status = 0;
      memcpy(&status, p + o.g_atomicstatus, 4);
      const uint32_t bare = status & ~symbols::kGoScanBit;
      const uint64_t goid = Word(p, o.g_goid);
      const uint64_t lo = Word(p, o.g_stack_lo), hi = Word(p, o.g_stack_hi);
      const bool dead = bare == symbols::kGoDead || bare == symbols::kGoDeadExtra;
      // allgs never holds an idle g (newproc1 makes it dead first), nor a live one without goid
      // or stack: what reads so is not a g.
      if (!reads[k].ok || (!dead && (bare == symbols::kGoIdle || bare > symbols::kGoDeadExtra ||
                                     goid == 0 || hi <= lo || hi - lo > kMaxStack))) {
        if (implausible != nullptr) ++*implausible;
        continue;
      }
      s.goid = goid;
      if (!goids.empty() && goid != goids[i]) continue;  // reused for another goroutine
      if (dead) continue;
      const uint8_t reason = p[o.g_waitreason];
      s.known = true;
      s.status = bare;
      s.wait_reason = reason;
      s.stack_lo = lo;
      s.stack_hi = hi;
      if (o.g_sched >= 0) {
        s.sched_sp = Word(p, o.g_sched + o.gobuf_sp);
        s.sched_pc = Word(p, o.g_sched + o.gobuf_pc);
        if (o.gobuf_bp >= 0) s.sched_bp = Word(p, o.g_sched + o.gobuf_bp);
        s.sched_ctxt = Word(p, o.g_sched + o.gobuf_ctxt);
      }
      s.waiting = bare == symbols::kGoWaiting || bare == symbols::kGoLeaked;
      s.state = symbols::GoroutineStateString(version, status, reason);
      if (const int64_t since = static_cast<int64_t>(Word(p, o.g_waitsince));
          s.waiting && since > 0) {
        s.waiting_since = clock_.ToTime(static_cast<uint64_t>(since));
      }
      if (o.g_parent_goid >= 0) s.parent_goid = Word(p, o.g_parent_goid);
      s.gopc = Word(p, o.g_gopc);
      if (s.gopc != 0) s.go_site = decoder_.GoSite(s.gopc);
      s.start_function = decoder_.FunctionName(Word(p, o.g_startpc));
      s.system = IsSystem(s.start_function);
      // g.waiting lists a goroutine's sudogs for channel operations, and from 1.26 the one sudog
      // of a sync wait (whose waitlink then chains other waiters on the same semaphore).
      if (s.waiting && (ParkedOnChannels(s.state) || (sync_on_g_ && ParkedOnSync(s.state)))) {
        waiting[i] = Word(p, o.g_waiting);
      }
    }
  }
  cost_.goroutines += gs.size();
  ReadParkedChannels(out, waiting);
  return out;
}

void GoroutineReader::ReadParkedChannels(std::vector<GoroutineState>& states,
                                         const std::vector<uint64_t>& waiting) {
  const symbols::GoOffsets& o = bin_.offsets();
  const int32_t chan_word = o.SudogChanWord();
  const int32_t elem_word = o.SudogElemWord();
  if (o.sudog_g < 0 || o.sudog_waitlink < 0 || chan_word < 0 || elem_word < 0 || o.g_waiting < 0) {
    return;
  }
  const size_t len = static_cast<size_t>(
      std::max({o.sudog_g, o.sudog_waitlink, chan_word, elem_word, o.sudog_isselect}) + 8);
  // One round per depth of the g.waiting lists: the first sudog of every parked goroutine, then
  // their waitlinks, ...
  std::vector<size_t> who;
  std::vector<uint64_t> next;
  for (size_t i = 0; i < states.size(); ++i) {
    if (states[i].known && waiting[i] != 0) {
      who.push_back(i);
      next.push_back(waiting[i]);
    }
  }
  std::vector<bool> torn(states.size(), false);
  for (int depth = 0; depth < kMaxSudogs && !who.empty(); ++depth) {
    std::vector<uint8_t> buf(who.size() * len);
    std::vector<Process::ReadRequest> reads;
    for (size_t k = 0; k < who.size(); ++k) reads.push_back({next[k], &buf[k * len], len});
    ReadMany(reads);
    std::vector<size_t> who2;
    std::vector<uint64_t> next2;
    for (size_t k = 0; k < who.size(); ++k) {
      GoroutineState& s = states[who[k]];
      const uint8_t* p = &buf[k * len];
      // Each sudog names its goroutine: anything else means the list changed under the read.
      if (!reads[k].ok || Word(p, o.sudog_g) != s.g) {
        torn[who[k]] = true;
        continue;
      }
      s.sudogs.push_back(next[k]);
      if (ParkedOnSync(s.state)) {
        s.sync_object = Word(p, elem_word);
        continue;  // its waitlink is the next waiter on the semaphore, not its own
      }
      if (const uint64_t c = Word(p, chan_word); c != 0) s.channels.push_back(c);
      if (o.sudog_isselect >= 0 && p[o.sudog_isselect] != 0) s.in_select = true;
      const uint64_t link = Word(p, o.sudog_waitlink);
      if (std::find(s.sudogs.begin(), s.sudogs.end(), link) != s.sudogs.end()) {
        torn[who[k]] = true;  // a cycle: the list changed under the read, or is corrupt
        continue;
      }
      if (link != 0) {
        who2.push_back(who[k]);
        next2.push_back(link);
      }
    }
    who.swap(who2);
    next.swap(next2);
  }
  for (size_t i : who) torn[i] = true;  // longer than any select
  // The goroutine must still be parked where it was: re-read g.waiting of those with sudogs.
  std::vector<size_t> check;
  std::vector<uint64_t> now(states.size(), 0);
  std::vector<Process::ReadRequest> reads;
  for (size_t i = 0; i < states.size(); ++i) {
    if (!states[i].sudogs.empty() && !torn[i]) {
      check.push_back(i);
      reads.push_back({states[i].g + o.g_waiting, &now[i], 8});
    }
  }
  ReadMany(reads);
  for (size_t k = 0; k < check.size(); ++k) {
    if (!reads[k].ok || now[check[k]] != waiting[check[k]]) torn[check[k]] = true;
  }
  for (size_t i = 0; i < states.size(); ++i) {
    if (!torn[i]) continue;
    states[i].known = false;
    states[i].channels.clear();
    states[i].sudogs.clear();
    states[i].sync_object = 0;
  }
}

std::vector<GoroutineState> GoroutineReader::Read(const std::vector<Query>& queries) {
  std::vector<uint64_t> gs, goids;
  gs.reserve(queries.size());
  goids.reserve(queries.size());
  for (const Query& q : queries) {
    gs.push_back(q.g);
    goids.push_back(q.goid);
  }
  std::vector<GoroutineState> out = ReadGs(gs, goids);
  for (size_t i = 0; i < out.size(); ++i) out[i].goid = queries[i].goid;
  return out;
}

std::vector<GoroutineState> GoroutineReader::ReadAll() {
  absl::StatusOr<std::vector<GoroutineState>> every = ReadEvery();
  if (!every.ok()) return {};
  std::vector<GoroutineState>& out = *every;
  out.erase(
      std::remove_if(out.begin(), out.end(), [](const GoroutineState& s) { return !s.known; }),
      out.end());
  return std::move(out);
}

absl::StatusOr<std::vector<GoroutineState>> GoroutineReader::ReadEvery() {
  std::vector<GoroutineState> out;
  auto allgs = bin_.AllgsAddress();
  auto allglen = bin_.AllglenAddress();
  if (!allgs.ok() || !allglen.ok()) return out;
  // The length first: the runtime publishes a grown array before the length that covers it.
  uint64_t n = 0, slice[3] = {};  // allgs: array, len, cap
  std::vector<Process::ReadRequest> header = {{*allglen + bias_, &n, 8},
                                              {*allgs + bias_, slice, sizeof(slice)}};
  ReadMany(header);
  if (!header[0].ok || !header[1].ok) return absl::DataLossError("runtime.allgs is unreadable");
  if (n == 0) return out;
  ASSIGN_OR_RETURN(const WritableMemory memory, process_.Writable());
  if (n > slice[2] || n > memory.Extent(slice[0]) / 8) {
    return absl::DataLossError(
        absl::StrFormat("runtime.allglen is %d, past runtime.allgs (cap %d, %d mapped at %#x)", n,
                        slice[2], memory.Extent(slice[0]) / 8, slice[0]));
  }
  // In chunks, each g pointer checked before it is read: the cost follows the goroutines that
  // make sense, and a list of garbage is refused after a few of its entries.
  const uint64_t g_len = static_cast<uint64_t>(std::max(bin_.offsets().GReadSpan(), 8));
  absl::flat_hash_set<uint64_t> seen;
  std::vector<uint64_t> chunk, gs;
  uint64_t plausible = 0, garbage = 0, held = 0;
  for (uint64_t first = 0; first < n; first += kGChunk) {
    chunk.resize(std::min<uint64_t>(kGChunk, n - first));
    std::vector<Process::ReadRequest> list = {
        {slice[0] + first * 8, chunk.data(), chunk.size() * 8}};
    ReadMany(list);
    if (!list[0].ok) return absl::DataLossError("runtime.allgs' array is unreadable");
    gs.clear();
    for (uint64_t g : chunk) {
      // A g is a heap object: aligned, in a writable mapping, listed once.
      if (g % 8 != 0 || !memory.Contains(g, g_len) || !seen.insert(g).second) {
        ++garbage;
      } else {
        gs.push_back(g);
      }
    }
    uint64_t implausible = 0;
    std::vector<GoroutineState> states = ReadGs(gs, {}, &implausible);
    garbage += implausible;
    plausible += gs.size() - implausible;
    for (GoroutineState& s : states) {
      // Dead g records tell nothing; those read torn keep their stack.
      if (!s.known && s.stack_hi == 0) continue;
      held += HeldBytes(s);
      out.push_back(std::move(s));
    }
    if (garbage > kMaxGarbage + plausible) {
      return absl::DataLossError(
          absl::StrFormat("runtime.allgs: %d of its first %d entries are not goroutines", garbage,
                          first + chunk.size()));
    }
    if (held + seen.size() * kSeenBytes > max_memory_) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "its goroutines need more than %d MiB (%d read)", max_memory_ >> 20, out.size()));
    }
  }
  if (plausible == 0) {
    return absl::DataLossError(
        absl::StrFormat("none of runtime.allgs' %d entries is a goroutine", n));
  }
  std::sort(out.begin(), out.end(),
            [](const GoroutineState& a, const GoroutineState& b) { return a.goid < b.goid; });
  return out;
}

std::vector<uint64_t> GoroutineReader::DoneChannels(const std::vector<ContextQuery>& queries) {
  const symbols::GoOffsets& o = bin_.offsets();
  std::vector<uint64_t> out(queries.size(), 0);
  if (o.cancelctx_done < 0) return out;
  // The done atomic.Value's data word.
  const std::vector<uint64_t> base =
      CancelCtxAddresses(o, queries, [this](auto& r) { ReadMany(r); });
  std::vector<Process::ReadRequest> reads;
  std::vector<size_t> read_of;
  for (size_t i = 0; i < queries.size(); ++i) {
    if (base[i] == 0) continue;
    reads.push_back({base[i] + o.cancelctx_done + 8, &out[i], 8});
    read_of.push_back(i);
  }
  ReadMany(reads);
  for (size_t k = 0; k < reads.size(); ++k) {
    if (!reads[k].ok) out[read_of[k]] = 0;
  }
  return out;
}

}  // namespace ctxagent
