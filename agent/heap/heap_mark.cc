#include "agent/heap/heap_mark.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "agent/heap/context_facts.h"
#include "agent/heap/heap_span.h"
#include "agent/heap/marker.h"
#include "symbols/go_status.h"
#include "symbols/status_macros.h"

namespace ctxagent::heap {

absl::Status Marker::Hold(uint64_t bytes) {
  held_ += bytes;
  result_.memory = std::max(result_.memory, held_);
  if (held_ > limits_.max_memory) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("the mark needs more than %d MiB", limits_.max_memory >> 20));
  }
  return absl::OkStatus();
}

absl::Status Marker::Read(std::vector<Process::ReadRequest>& requests) {
  for (const auto& r : requests) result_.bytes_read += r.len;
  if (result_.bytes_read > limits_.max_read) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("the mark would read more than %d MiB", limits_.max_read >> 20));
  }
  memory_.ReadMany(requests);
  for (const auto& r : requests) result_.unreadable += r.ok ? 0 : 1;
  return absl::OkStatus();
}

void Marker::MarkWord(uint64_t word) {
  uint64_t i = 0;
  const Span* s = Find(word, &i);
  if (s == nullptr) return;
  const uint64_t bit = s->bit + i;
  if (!Test(allocated_, bit) || Test(marked_, bit)) return;
  marked_[bit >> 6] |= uint64_t{1} << (bit & 63);
  ++result_.objects_marked;
  if (s->watched) {
    if (auto w = waiters_.find(bit); w != waiters_.end()) {
      for (size_t g : w->second) {
        if (!rooted_[g]) {
          rooted_[g] = true;
          ready_.push_back(g);
        }
      }
    }
    if (opaque_.contains(s->base + i * s->elemsize)) return;
  }
  if (s->noscan) return;
  grey_[bit >> 6] |= uint64_t{1} << (bit & 63);
  if (!s->queued) {
    spans_[s - spans_.data()].queued = true;
    grey_spans_.push_back(static_cast<uint32_t>(s - spans_.data()));
  }
}

uint64_t Marker::ObjectAt(uint64_t addr, uint64_t* base) const {
  uint64_t i = 0;
  const Span* s = Find(addr, &i);
  if (s == nullptr || s->noscan || !Test(allocated_, s->bit + i)) return 0;
  *base = s->base + i * s->elemsize;
  return s->watched && opaque_.contains(*base) ? 0 : s->elemsize;
}

void Marker::FindReachedContexts() {
  for (size_t i = 0; i < contexts_.contexts().size(); ++i) {
    uint64_t index = 0;
    const Span* s = Find(contexts_.contexts()[i], &index);
    if (s != nullptr && Test(marked_, s->bit + index)) contexts_.SetReached(i);
  }
  result_.contexts = contexts_.TakeFacts();
  result_.holds = contexts_.TakeHolds();
}

void Marker::ScanWords(const uint8_t* data, uint64_t len, absl::Span<const uint8_t> mask,
                       bool masked, uint64_t first_word) {
  for (uint64_t off = 0; off + 8 <= len; off += 8) {
    const uint64_t word = Load(data, off), w = first_word + off / 8;
    // Before the mask: a closure on a stack keeps its code word in a slot no stack map calls a
    // pointer. Any slot, live or dead: a cancel func wrongly held hides a leak, never invents one.
    if (off + 16 <= len) contexts_.Note(word, Load(data, off + 8));
    if (masked && (w / 8 >= mask.size() || !((mask[w / 8] >> (w % 8)) & 1))) continue;
    if (word >= heap_lo_ && word < heap_hi_) MarkWord(word);
  }
}

absl::Status Marker::ScanRange(uint64_t addr, uint64_t len, const std::vector<uint8_t>* mask) {
  addr &= ~uint64_t{7};
  for (uint64_t off = 0; off < len; off += kBatchBytes) {
    const uint64_t n = std::min(kBatchBytes, len - off);
    if (buffer_.size() < n) buffer_.resize(n);
    std::vector<Process::ReadRequest> r = {{addr + off, buffer_.data(), n}};
    RETURN_IF_ERROR(Read(r));
    if (r[0].ok) {
      ScanWords(buffer_.data(), n,
                mask != nullptr ? absl::MakeConstSpan(*mask) : absl::Span<const uint8_t>(),
                mask != nullptr, off / 8);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> Marker::ScanBatch(const std::vector<uint32_t>& round, size_t first) {
  std::vector<Process::ReadRequest> r;
  std::vector<size_t> ends;  // per object region, the end of its objects in objects_
  // The pointer bits of the batch's spans that have them: (span, its request in `bits`).
  std::vector<std::pair<uint32_t, size_t>> span_bits;
  std::vector<Process::ReadRequest> bits;
  objects_.clear();
  uint64_t bytes = 0, k = first;
  for (; k < round.size() && r.size() + bits.size() < kBatchRegions; ++k) {
    Span& s = spans_[round[k]];
    // Its grey objects, nearby ones read as one region, until the batch is full: a span left
    // part-drained is drained on from its first grey object by the next batch.
    bool full = false;
    for (uint64_t i = 0; i < s.nelems && !full; ++i) {
      const uint64_t bit = s.bit + i;
      if (grey_[bit >> 6] == 0) {
        i |= 63 - (bit & 63);  // skips the rest of this bitmap word
        continue;
      }
      if (!Test(grey_, bit)) continue;
      const uint64_t at = s.base + i * s.elemsize;
      if (s.elemsize > kBatchBytes) {  // alone, in chunks
        if (!r.empty()) {
          full = true;
          break;
        }
        grey_[bit >> 6] &= ~(uint64_t{1} << (bit & 63));
        RETURN_IF_ERROR(ScanRange(at, s.elemsize, nullptr));
        continue;
      }
      const bool join = !objects_.empty() && objects_.back() >> 32 == round[k] &&
                        at - (r.back().addr + r.back().len) <= kMaxGap;
      const bool new_bits = s.pointers == Span::kSpanBits &&
                            (span_bits.empty() || span_bits.back().first != round[k]);
      const uint64_t grow = (join ? at + s.elemsize - (r.back().addr + r.back().len) : s.elemsize) +
                            (new_bits ? s.bytes / 64 : 0);
      full =
          bytes + grow > kBatchBytes || (r.size() + bits.size() + !join + new_bits > kBatchRegions);
      if (full) break;
      grey_[bit >> 6] &= ~(uint64_t{1} << (bit & 63));
      if (new_bits) {
        span_bits.push_back({round[k], bits.size()});
        bits.push_back({HeapBitsAt(s), nullptr, s.bytes / 64});
      }
      if (join) {
        r.back().len += at + s.elemsize - (r.back().addr + r.back().len);
        ends.back() = objects_.size() + 1;
      } else {
        r.push_back({at, nullptr, s.elemsize});
        ends.push_back(objects_.size() + 1);
      }
      objects_.push_back(uint64_t{round[k]} << 32 | i);
      bytes += grow;
    }
    if (full) break;
    s.queued = false;
  }
  if (buffer_.size() < bytes) buffer_.resize(bytes);
  const size_t object_regions = r.size();
  r.insert(r.end(), bits.begin(), bits.end());
  uint64_t at = 0;
  for (auto& req : r) {
    req.out = buffer_.data() + at;
    at += req.len;
  }
  RETURN_IF_ERROR(Read(r));
  RETURN_IF_ERROR(ReadTypes(r, object_regions, ends));
  size_t b = 0;  // the span_bits entry of the current object's span
  for (size_t j = 0, o = 0; j < object_regions; ++j) {
    for (; o < ends[j]; ++o) {
      if (!r[j].ok) continue;
      const uint32_t span = objects_[o] >> 32;
      const Span& s = spans_[span];
      const uint64_t addr = s.base + (objects_[o] & UINT32_MAX) * s.elemsize;
      const uint8_t* data = static_cast<const uint8_t*>(r[j].out) + (addr - r[j].addr);
      while (b < span_bits.size() && span_bits[b].first < span) ++b;
      // Its pointer bits when they were read: a bit per word of the span (the runtime's
      // heapBitsSmallForAddr); else every word is a possible pointer.
      const Process::ReadRequest* hb = b < span_bits.size() && span_bits[b].first == span
                                           ? &r[object_regions + span_bits[b].second]
                                           : nullptr;
      const TypeMask* type = s.pointers == Span::kTypeHeader ? TypeOf(data, s.elemsize) : nullptr;
      if (hb != nullptr && hb->ok) {
        ScanWords(data, s.elemsize, {static_cast<const uint8_t*>(hb->out), hb->len}, true,
                  (addr - s.base) / 8);
      } else if (type != nullptr) {
        // As the runtime's typePointers: the type's mask from after the header, once per element.
        for (uint64_t elem = 8; elem + 8 <= s.elemsize; elem += type->size) {
          ScanWords(data + elem, std::min(type->ptr_bytes, s.elemsize - elem), type->mask, true, 0);
        }
      } else {
        ScanWords(data, s.elemsize, {}, false, 0);
      }
    }
  }
  return k;
}

absl::Status Marker::Drain() {
  std::vector<uint32_t> round;
  while (!grey_spans_.empty() || !ready_.empty()) {
    if (!ready_.empty()) {
      const size_t g = ready_.back();
      ready_.pop_back();
      RETURN_IF_ERROR(ScanGoroutine(g));
      continue;
    }
    // Rounds over the spans holding grey objects, in address order: a span's grey objects are
    // read together, a few regions per span rather than one per object, and what the round
    // marks in a span it has yet to reach is scanned in the same round.
    round = std::exchange(grey_spans_, {});
    std::sort(round.begin(), round.end());
    for (size_t k = 0; k < round.size();) {
      ASSIGN_OR_RETURN(k, ScanBatch(round, k));
    }
  }
  return absl::OkStatus();
}

absl::Status Marker::ScanGlobalRange(uint64_t start, uint64_t end, int32_t mask_field) {
  if (end < start || end - start > kMaxGlobals) {
    return absl::DataLossError(absl::StrFormat("globals %#x-%#x make no sense", start, end));
  }
  const uint64_t words = (end - start) / 8;
  // runtime.bitvector {n int32; bytedata *uint8}: one bit per word, set where it holds a pointer.
  uint64_t bv[2] = {};
  std::vector<uint8_t> mask;
  if (mask_field >= 0) {
    std::vector<Process::ReadRequest> r = {{facts_.moduledata + mask_field, bv, 16}};
    RETURN_IF_ERROR(Read(r));
    if (r[0].ok && (bv[0] & 0xffffffff) == words && bv[1] != 0) {
      mask.resize((words + 7) / 8);
      r = {{bv[1], mask.data(), mask.size()}};
      RETURN_IF_ERROR(Read(r));
      if (!r[0].ok) mask.clear();
    }
  }
  // Without the bitmap, every word is a possible pointer: more is kept, nothing invented.
  return ScanRange(start, end - start, mask.empty() ? nullptr : &mask);
}

absl::Status Marker::ScanGlobals() {
  if (facts_.moduledata == 0 || o_.moduledata_data < 0 || o_.moduledata_ebss < 0) {
    return absl::FailedPreconditionError("runtime.firstmoduledata is not located");
  }
  uint64_t md[4] = {};  // data, edata, bss, ebss: consecutive in every release
  std::vector<Process::ReadRequest> r = {{facts_.moduledata + o_.moduledata_data, md, 32}};
  RETURN_IF_ERROR(Read(r));
  if (!r[0].ok) return absl::DataLossError("runtime.firstmoduledata is unreadable");
  RETURN_IF_ERROR(ScanGlobalRange(md[0], md[1], o_.moduledata_gcdatamask));
  return ScanGlobalRange(md[2], md[3], o_.moduledata_gcbssmask);
}

absl::Status Marker::ScanGoroutine(size_t i) {
  const GoroutineState& g = gs_[i];
  ++result_.roots;
  MarkWord(g.sched_ctxt);  // the closure of a goroutine not yet started
  if (g.stack_hi <= g.stack_lo || g.stack_hi - g.stack_lo > kMaxStack) return absl::OkStatus();
  // A running goroutine's saved SP is stale: its whole stack then.
  const bool parked = g.known && g.status != symbols::kGoRunning;
  const uint64_t sp =
      parked && g.sched_sp >= g.stack_lo && g.sched_sp < g.stack_hi ? g.sched_sp : g.stack_lo;
  const uint64_t len = g.stack_hi - sp;
  if (!facts_.frames || !UnwindsFromSched(g) || len > kBatchBytes) {
    return ScanRange(sp, len, nullptr);
  }
  if (buffer_.size() < len) buffer_.resize(len);
  std::vector<Process::ReadRequest> r = {{sp, buffer_.data(), len}};
  RETURN_IF_ERROR(Read(r));
  if (r[0].ok) {
    const StackMasks masks = StackPointerMasks(buffer_.data(), len, sp, g.sched_pc, facts_.frames);
    contexts_.NoteStack(g.goid, buffer_.data(), len, masks.known);
    ScanWords(buffer_.data(), len, masks.live, true, 0);
  }
  return absl::OkStatus();
}

absl::Status Marker::ClassifyGoroutines() {
  rooted_.assign(gs_.size(), false);
  for (const GoroutineState& g : gs_) {
    opaque_.insert(g.g);
    opaque_.insert(g.sudogs.begin(), g.sudogs.end());
  }
  RETURN_IF_ERROR(Hold(opaque_.size() * 16 + gs_.size()));
  for (uint64_t obj : opaque_) Watch(obj);
  for (size_t i = 0; i < gs_.size(); ++i) {
    const GoroutineState& g = gs_[i];
    std::vector<uint64_t> objects;
    switch (ClassifyWait(facts_.version, g)) {
      case WaitClass::kRoot:
        break;
      case WaitClass::kForever:
        ++result_.candidates;
        continue;
      case WaitClass::kChannel:
        objects = g.channels;
        break;
      case WaitClass::kSync:
        objects = {g.sync_object};
        break;
    }
    if (objects.empty()) {
      rooted_[i] = true;
      ready_.push_back(i);
      continue;
    }
    ++result_.candidates;
    // What it waits on outside the heap (a global) is reachable by definition.
    for (uint64_t obj : objects) {
      uint64_t index = 0;
      const Span* s = Find(obj, &index);
      if (s == nullptr || !Test(allocated_, s->bit + index)) {
        rooted_[i] = true;
        break;
      }
      waiters_[s->bit + index].push_back(i);
      Watch(obj);
    }
    if (rooted_[i]) ready_.push_back(i);
  }
  return Hold(waiters_.size() * 48);
}

absl::StatusOr<MarkResult> Marker::Run() {
  // The goroutines' states count against the same cap: one process's marks hold no more.
  uint64_t states = 0;
  for (const GoroutineState& g : gs_) states += HeldBytes(g);
  RETURN_IF_ERROR(Hold(states + contexts_.contexts().size()));
  RETURN_IF_ERROR(ReadSpans());
  RETURN_IF_ERROR(ClassifyGoroutines());
  RETURN_IF_ERROR(ScanGlobals());
  // Marking an object a parked goroutine waits on roots that goroutine (MarkWord): one drain
  // reaches the fixed point.
  RETURN_IF_ERROR(Drain());
  uint64_t walk = 0;  // what the walk's current depth holds, in place of the one before
  RETURN_IF_ERROR(
      contexts_.FollowHolds([this](uint64_t addr, uint64_t* base) { return ObjectAt(addr, base); },
                            [this](std::vector<Process::ReadRequest>& r) { return Read(r); },
                            [&](uint64_t bytes) {
                              held_ -= std::exchange(walk, bytes);
                              return Hold(bytes);
                            }));
  FindReachedContexts();
  for (size_t i = 0; i < gs_.size(); ++i) {
    // As the runtime's profile: the main goroutine parked in `select {}` is not reported (it
    // still counts as leaked for the mark: it roots nothing).
    if (rooted_[i] ||
        (gs_[i].goid == 1 && ClassifyWait(facts_.version, gs_[i]) == WaitClass::kForever)) {
      continue;
    }
    result_.leaked.push_back(i);
  }
  return std::move(result_);
}

absl::StatusOr<MarkResult> Mark(RemoteMemory& memory, const HeapFacts& facts,
                                const std::vector<GoroutineState>& goroutines,
                                const MarkLimits& limits, absl::Span<const uint64_t> contexts,
                                ContextFacts::WithoutCancelItab without_cancel) {
  return Marker(memory, facts, goroutines, limits, contexts, without_cancel).Run();
}

}  // namespace ctxagent::heap
