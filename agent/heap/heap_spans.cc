// The heap mark's span table (ReadSpans: every in-use span, its allocation bits, the page index)
// and the types that objects with a malloc header start with (ReadTypes).
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "agent/heap/marker.h"
#include "symbols/status_macros.h"

namespace ctxagent::heap {

absl::Status Marker::ReadSpans() {
  if (facts_.mheap == 0 || o_.mheap_allspans < 0 || o_.mspan_elemsize < 0 ||
      o_.mspan_allocbits < 0 || o_.mspan_state < 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the heap layout of go%d.%d is not known", facts_.version.major, facts_.version.minor));
  }
  uint64_t header[3] = {};  // []*mspan
  std::vector<Process::ReadRequest> r = {{facts_.mheap + o_.mheap_allspans, header, 24}};
  RETURN_IF_ERROR(Read(r));
  if (!r[0].ok) return absl::DataLossError("runtime.mheap_ is unreadable");
  const uint64_t n = header[1];
  if (n > header[2] || (n > 0 && header[0] == 0)) {
    return absl::DataLossError(absl::StrFormat("mheap_.allspans: len %d cap %d", n, header[2]));
  }
  if (n > limits_.max_spans) {
    return absl::ResourceExhaustedError(absl::StrFormat("%d spans (cap %d)", n, limits_.max_spans));
  }
  RETURN_IF_ERROR(Hold(n * 8));
  std::vector<uint64_t> ptrs(n);
  r = {{header[0], ptrs.data(), n * 8}};
  RETURN_IF_ERROR(Read(r));
  if (n > 0 && !r[0].ok) return absl::DataLossError("mheap_.allspans' array is unreadable");
  RETURN_IF_ERROR(ReadSpanFields(ptrs));
  held_ -= n * 8;
  std::sort(spans_.begin(), spans_.end(),
            [](const Span& a, const Span& b) { return a.base < b.base; });
  uint64_t bits = 0;
  for (size_t i = 0; i < spans_.size(); ++i) {
    Span& s = spans_[i];
    if (i > 0 && s.base < spans_[i - 1].base + spans_[i - 1].bytes) {
      return absl::DataLossError(
          absl::StrFormat("spans at %#x and %#x overlap", spans_[i - 1].base, s.base));
    }
    s.bit = bits;
    bits += s.nelems;
    result_.heap_bytes += s.bytes;
  }
  result_.spans = spans_.size();
  if (!spans_.empty()) {
    heap_lo_ = spans_.front().base;
    heap_hi_ = spans_.back().base + spans_.back().bytes;
  }
  RETURN_IF_ERROR(IndexSpans());
  const uint64_t words = (bits + 63) / 64;
  // The bitmaps, two span queues (the round drained, the next) and one batch's objects.
  RETURN_IF_ERROR(Hold(3 * words * 8 + 2 * spans_.size() * 4 + kBatchBytes));
  allocated_.assign(words, 0);
  marked_.assign(words, 0);
  grey_.assign(words, 0);
  return ReadAllocBits();
}

absl::Status Marker::ReadSpanFields(const std::vector<uint64_t>& ptrs) {
  const int32_t len =
      std::max({o_.mspan_startaddr, o_.mspan_npages, o_.mspan_freeindex, o_.mspan_nelems,
                o_.mspan_allocbits, o_.mspan_spanclass, o_.mspan_state, o_.mspan_elemsize}) +
      8;
  const int index_bytes = facts_.span_index_u16 ? 2 : 8;
  std::vector<uint8_t> buf(kBatchRegions * len);
  uint64_t torn = 0;
  for (size_t first = 0; first < ptrs.size(); first += kBatchRegions) {
    const size_t count = std::min(kBatchRegions, ptrs.size() - first);
    std::vector<Process::ReadRequest> r;
    for (size_t k = 0; k < count; ++k) r.push_back({ptrs[first + k], &buf[k * len], size_t(len)});
    RETURN_IF_ERROR(Read(r));
    for (size_t k = 0; k < count; ++k) {
      const uint8_t* p = &buf[k * len];
      if (r[k].ok && p[o_.mspan_state] != kSpanInUse) continue;
      Span s;
      s.base = Load(p, o_.mspan_startaddr);
      const uint64_t npages = Load(p, o_.mspan_npages);
      s.elemsize = Load(p, o_.mspan_elemsize);
      s.nelems = Load(p, o_.mspan_nelems, index_bytes);
      s.freeindex = Load(p, o_.mspan_freeindex, index_bytes);
      s.allocbits = Load(p, o_.mspan_allocbits);
      s.noscan = (p[o_.mspan_spanclass] & 1) != 0;
      s.bytes = npages * kPageSize;
      if (!r[k].ok || s.base % kPageSize != 0 || npages == 0 || npages > kMaxSpanPages ||
          s.base + s.bytes < s.base || s.elemsize == 0 || s.elemsize % 8 != 0 || s.nelems == 0 ||
          s.nelems > s.bytes / s.elemsize || s.freeindex > s.nelems) {
        if (++torn > kMaxTornSpans) {
          return absl::DataLossError(
              absl::StrFormat("more than %d in-use spans make no sense", kMaxTornSpans));
        }
        continue;
      }
      // Objects of a size class (not a large object's span): small ones with their bits in the span
      // past its last object (else the layout is not the one tabled: conservative), larger ones
      // behind a type header.
      if (facts_.heap_bits != HeapFacts::HeapBits::kNone && !s.noscan &&
          (p[o_.mspan_spanclass] >> 1) != 0) {
        if (s.elemsize > kMaxHeapBitsObject) {
          if (o_.type_gcdata >= 0) s.pointers = Span::kTypeHeader;
        } else if (s.bytes <= kMaxHeapBitsSpan && HeapBitsAt(s) >= s.base + s.nelems * s.elemsize) {
          s.pointers = Span::kSpanBits;
        }
      }
      // The runtime's object index without a division (exact for its size classes; checked).
      if (s.bytes <= UINT32_MAX) s.div_mul = static_cast<uint32_t>(UINT32_MAX / s.elemsize + 1);
      RETURN_IF_ERROR(Hold(sizeof(Span)));
      spans_.push_back(s);
    }
  }
  return absl::OkStatus();
}

absl::Status Marker::ReadAllocBits() {
  // An object is allocated when it is below the free index or was live at the last sweep (the
  // runtime's !mspan.isFree); a span whose bits cannot be read counts every object allocated.
  for (size_t first = 0; first < spans_.size(); first += kBatchRegions) {
    const size_t count = std::min(kBatchRegions, spans_.size() - first);
    std::vector<std::vector<uint8_t>> bits(count);
    std::vector<Process::ReadRequest> r;
    for (size_t k = 0; k < count; ++k) {
      const Span& s = spans_[first + k];
      bits[k].assign((s.nelems + 7) / 8, 0xff);
      if (s.allocbits != 0) r.push_back({s.allocbits, bits[k].data(), bits[k].size()});
    }
    RETURN_IF_ERROR(Read(r));
    for (size_t k = 0, j = 0; k < count; ++k) {
      const Span& s = spans_[first + k];
      if (s.allocbits != 0 && !r[j++].ok) std::fill(bits[k].begin(), bits[k].end(), 0xff);
      for (uint64_t i = 0; i < s.nelems; ++i) {
        if (i < s.freeindex || ((bits[k][i / 8] >> (i % 8)) & 1)) {
          allocated_[(s.bit + i) >> 6] |= uint64_t{1} << ((s.bit + i) & 63);
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Marker::IndexSpans() {
  if (spans_.empty()) return absl::OkStatus();
  arena_lo_ = heap_lo_ / (kArenaPages * kPageSize);
  const uint64_t arenas = (heap_hi_ - 1) / (kArenaPages * kPageSize) - arena_lo_ + 1;
  RETURN_IF_ERROR(Hold(arenas * sizeof(uint32_t)));
  arenas_.assign(arenas, kNoSpan);
  uint64_t tables = 0;
  for (const Span& s : spans_) {
    for (uint64_t a = s.base / (kArenaPages * kPageSize);
         a <= (s.base + s.bytes - 1) / (kArenaPages * kPageSize); ++a) {
      if (arenas_[a - arena_lo_] == kNoSpan) arenas_[a - arena_lo_] = tables++;
    }
  }
  // Spans scattered over many arenas: a table each, within the memory cap.
  RETURN_IF_ERROR(Hold(tables * kArenaPages * sizeof(uint32_t)));
  pages_.assign(tables * kArenaPages, kNoSpan);
  for (size_t i = 0; i < spans_.size(); ++i) {
    const uint64_t first = spans_[i].base / kPageSize;
    for (uint64_t page = first; page < first + spans_[i].bytes / kPageSize; ++page) {
      const uint64_t table = arenas_[page / kArenaPages - arena_lo_];
      pages_[table * kArenaPages + page % kArenaPages] = static_cast<uint32_t>(i);
    }
  }
  return absl::OkStatus();
}

const Span* Marker::Find(uint64_t addr, uint64_t* index) const {
  if (addr < heap_lo_ || addr >= heap_hi_) return nullptr;
  const uint64_t page = addr / kPageSize;
  const uint32_t table = arenas_[page / kArenaPages - arena_lo_];
  if (table == kNoSpan) return nullptr;
  const uint32_t span = pages_[uint64_t{table} * kArenaPages + page % kArenaPages];
  if (span == kNoSpan) return nullptr;
  const Span& s = spans_[span];
  const uint64_t off = addr - s.base;
  uint64_t i = (off * s.div_mul) >> 32;
  if (s.div_mul == 0 || i * s.elemsize > off || off - i * s.elemsize >= s.elemsize) {
    i = off / s.elemsize;
  }
  if (i >= s.nelems) return nullptr;
  *index = i;
  return &s;
}

absl::Status Marker::ReadTypes(const std::vector<Process::ReadRequest>& r, size_t regions,
                               const std::vector<size_t>& ends) {
  std::vector<uint64_t> fresh;
  for (size_t j = 0, o = 0; j < regions; ++j) {
    for (; o < ends[j]; ++o) {
      const Span& s = spans_[objects_[o] >> 32];
      if (!r[j].ok || s.pointers != Span::kTypeHeader) continue;
      const uint64_t addr = s.base + (objects_[o] & UINT32_MAX) * s.elemsize;
      const uint64_t type = Load(static_cast<const uint8_t*>(r[j].out) + (addr - r[j].addr), 0);
      if (type != 0 && type % 8 == 0 && types_.try_emplace(type).second) fresh.push_back(type);
    }
  }
  if (fresh.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(Hold(fresh.size() * (sizeof(TypeMask) + 16)));
  const size_t len = o_.type_gcdata + 8;
  std::vector<uint8_t> headers(fresh.size() * len);
  std::vector<Process::ReadRequest> rt;
  for (size_t k = 0; k < fresh.size(); ++k) rt.push_back({fresh[k], &headers[k * len], len});
  RETURN_IF_ERROR(Read(rt));
  // Where each fresh type's mask is, or the slot holding its address.
  std::vector<uint64_t> at(fresh.size(), 0), slots(fresh.size(), 0);
  for (size_t k = 0; k < fresh.size(); ++k) {
    const uint8_t* h = &headers[k * len];
    TypeMask& t = types_[fresh[k]];
    t.size = Load(h, o_.type_size);
    t.ptr_bytes = Load(h, o_.type_ptrbytes);
    // A size no object of a size class has, no pointers (a scan span's types have some, and are
    // word-aligned: an object is then scanned a word per word at most), or a GC program: its
    // objects stay conservative.
    if (!rt[k].ok || t.size == 0 || t.size % 8 != 0 || t.size > kMaxSizeClassBytes ||
        t.ptr_bytes == 0 || t.ptr_bytes > t.size || t.ptr_bytes % 8 != 0 ||
        (!facts_.gc_mask_on_demand && (h[o_.type_kind] & kKindGCProg))) {
      continue;
    }
    at[k] = Load(h, o_.type_gcdata);
    if (facts_.gc_mask_on_demand && (h[o_.type_tflag] & kTFlagGCMaskOnDemand)) {
      std::swap(at[k], slots[k]);
    }
  }
  rt.clear();
  std::vector<size_t> which;
  for (size_t k = 0; k < fresh.size(); ++k) {
    if (slots[k] != 0) {
      rt.push_back({slots[k], &at[k], 8});
      which.push_back(k);
    }
  }
  RETURN_IF_ERROR(Read(rt));
  for (size_t j = 0; j < rt.size(); ++j) {
    if (!rt[j].ok) at[which[j]] = 0;  // null until the runtime builds it, at the first scan
  }
  rt.clear();
  which.clear();
  for (size_t k = 0; k < fresh.size(); ++k) {
    TypeMask& t = types_[fresh[k]];
    if (at[k] == 0) continue;
    t.mask.assign((t.ptr_bytes / 8 + 7) / 8, 0);
    RETURN_IF_ERROR(Hold(t.mask.size()));
    rt.push_back({at[k], t.mask.data(), t.mask.size()});
    which.push_back(k);
  }
  RETURN_IF_ERROR(Read(rt));
  for (size_t j = 0; j < rt.size(); ++j) types_[fresh[which[j]]].known = rt[j].ok;
  return absl::OkStatus();
}

}  // namespace ctxagent::heap
