#include "agent/trace/tracer.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "ctxagent_bpf.skel.h"
#include "symbols/status_macros.h"

namespace ctxagent {

using symbols::HookKind;

go_binary_config ConfigFor(const symbols::GoBinary& bin) {
  const symbols::GoOffsets& o = bin.offsets();
  // GoBinary::Open only accepts releases the facts table covers.
  const symbols::GoRuntimeFacts facts =
      symbols::RuntimeFactsForVersion(bin.build_info().version).value_or(symbols::GoRuntimeFacts{});
  go_binary_config c{};
  c.g_goid = o.g_goid;
  c.g_parent_goid = o.g_parent_goid;
  c.g_gopc = o.g_gopc;
  c.g_startpc = o.g_startpc;
  c.g_sched_ctxt = o.g_sched + o.gobuf_ctxt;
  c.timerctx_deadline = o.timerctx_deadline;
  c.create_abi = facts.propagate_cancel_method ? CREATE_ABI_METHOD : CREATE_ABI_FUNC;
  c.callergp_arg = facts.newproc1_callergp_arg;
  return c;
}

uint64_t TracerCounters::dropped_total() const {
  uint64_t n = 0;
  for (uint64_t d : dropped) n += d;
  return n;
}

namespace {

int OnRingEvent(void* ctx, void* data, size_t size) {
  if (size < sizeof(ctx_event)) return 0;
  (*static_cast<Tracer::Handler*>(ctx))(*static_cast<const ctx_event*>(data));
  return 0;
}

uint64_t SumPerCpu(const bpf_map* map, uint32_t key) {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return 0;
  std::vector<uint64_t> v(ncpu);
  if (bpf_map__lookup_elem(map, &key, sizeof(key), v.data(), v.size() * sizeof(uint64_t), 0) != 0) {
    return 0;
  }
  uint64_t sum = 0;
  for (uint64_t x : v) sum += x;
  return sum;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tracer>> Tracer::Create(Handler handler, uint32_t ring_bytes) {
  if (ring_bytes < 4096 || (ring_bytes & (ring_bytes - 1)) != 0) {
    return absl::InvalidArgumentError("ring buffer size must be a power of two of at least 4096");
  }
  std::unique_ptr<Tracer> t(new Tracer());
  t->handler_ = std::move(handler);
  libbpf_set_print(nullptr);  // libbpf's own chatter would garble the terminal view
  t->skel_ = ctxagent_bpf__open();
  int err = t->skel_ == nullptr ? errno : 0;
  if (t->skel_ != nullptr) {
    bpf_map__set_max_entries(t->skel_->maps.events, ring_bytes);
    if (ctxagent_bpf__load(t->skel_) != 0) err = errno;
  }
  if (err != 0) {
    return absl::ErrnoToStatus(
        err,
        "cannot load the BPF programs (needs root or CAP_BPF+CAP_PERFMON+CAP_SYS_ADMIN, and a "
        "kernel with BTF)");
  }
  t->ring_ =
      ring_buffer__new(bpf_map__fd(t->skel_->maps.events), OnRingEvent, &t->handler_, nullptr);
  if (t->ring_ == nullptr) return absl::InternalError("cannot open the BPF ring buffer");
  return t;
}

Tracer::~Tracer() {
  while (!attachments_.empty()) Detach(attachments_.front().slot);
  for (bpf_link* l : process_links_) bpf_link__destroy(l);
  if (ring_ != nullptr) ring_buffer__free(ring_);
  if (skel_ != nullptr) ctxagent_bpf__destroy(skel_);
}

absl::StatusOr<uint32_t> Tracer::Attach(pid_t pid, const symbols::GoBinary& bin) {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else if (next_slot_ < CTX_MAX_BINARIES) {
    slot = next_slot_++;
  } else {
    return absl::ResourceExhaustedError("too many attached processes");
  }
  go_binary_config cfg = ConfigFor(bin);
  if (bpf_map__update_elem(skel_->maps.binaries, &slot, sizeof(slot), &cfg, sizeof(cfg), BPF_ANY) !=
      0) {
    return absl::ErrnoToStatus(errno, "cannot write the binary's configuration");
  }
  // The probes go on the file behind an open descriptor: /proc/<pid>/exe (the only path that
  // names it from here when it lives in a container) disappears when that process exits.
  int fd = open(bin.path().c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    free_slots_.push_back(slot);
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", bin.path()));
  }
  const std::string target = absl::StrCat("/proc/self/fd/", fd);
  Attachment a{pid, slot, fd, {}};
  auto attach = [&](uint64_t file_offset, ctx_hook hook, const std::string& what) -> absl::Status {
    LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = CTX_COOKIE(slot, hook));
    bpf_link* l = bpf_program__attach_uprobe_opts(skel_->progs.ctxagent_probe, pid, target.c_str(),
                                                  file_offset, &opts);
    if (l == nullptr) {
      int err = errno;
      return absl::ErrnoToStatus(err, absl::StrCat("cannot attach a uprobe to ", what, " in ",
                                                   bin.path(), " (pid ", pid, ")"));
    }
    a.links.push_back(l);
    return absl::OkStatus();
  };
  // Endings before beginnings: a goroutine or context whose start is seen must have its end seen
  // too, even when it ends while the remaining probes are still being attached.
  std::vector<const symbols::PlannedProbe*> ordered;
  for (const symbols::PlannedProbe& p : bin.plan().probes) ordered.push_back(&p);
  auto rank = [](HookKind k) {
    return k == HookKind::kGoroutineExit ? 0 : k == HookKind::kContextCancel ? 1 : 2;
  };
  std::stable_sort(ordered.begin(), ordered.end(), [&](const auto* a, const auto* b) {
    return rank(a->hook.kind) < rank(b->hook.kind);
  });
  absl::Status status;
  for (const symbols::PlannedProbe* pp : ordered) {
    const symbols::PlannedProbe& p = *pp;
    switch (p.hook.kind) {
      case HookKind::kContextCreate:
        status.Update(attach(p.probe.file_offset, HOOK_CTX_CREATE, p.function.name));
        break;
      case HookKind::kContextCancel:
        // timerCtx and afterFuncCtx cancel through (*cancelCtx).cancel: one probe sees them all.
        if (p.function.name == "context.(*cancelCtx).cancel") {
          status.Update(attach(p.probe.file_offset, HOOK_CTX_CANCEL, p.function.name));
        }
        break;
      case HookKind::kGoroutineCreate:
        if (cfg.g_parent_goid < 0) {
          status.Update(attach(p.probe.file_offset, HOOK_GO_CREATE_ENTRY, p.function.name));
        }
        // The hand-off CALL is emulated; a RET is single-stepped (~15x the cost).
        if (!p.handoff_sites.empty()) {
          for (const auto& h : p.handoff_sites) {
            status.Update(attach(h.file_offset, HOOK_GO_CREATE_HANDOFF, "runtime.newproc.func1"));
          }
        } else {
          for (const auto& r : p.ret_sites) {
            status.Update(attach(r.file_offset, HOOK_GO_CREATE_RET, p.function.name + " RET"));
          }
        }
        break;
      case HookKind::kGoroutineExit:
        status.Update(attach(p.probe.file_offset, HOOK_GO_EXIT, p.function.name));
        break;
      case HookKind::kConstructor:
        break;  // the creation hook's stack names the constructor's caller: no second probe
    }
    if (!status.ok()) break;
  }
  if (!status.ok()) {
    for (auto l = a.links.rbegin(); l != a.links.rend(); ++l) bpf_link__destroy(*l);
    close(fd);
    free_slots_.push_back(slot);
    return status;
  }
  attachments_.push_back(std::move(a));
  return slot;
}

void Tracer::Detach(uint32_t attachment) {
  for (auto it = attachments_.begin(); it != attachments_.end();) {
    if (it->slot == attachment) {
      // Reverse attach order: beginnings go first, so nothing starts unseen while its end is
      // still watched.
      for (auto l = it->links.rbegin(); l != it->links.rend(); ++l) bpf_link__destroy(*l);
      close(it->exe_fd);
      free_slots_.push_back(it->slot);
      it = attachments_.erase(it);
    } else {
      ++it;
    }
  }
}

absl::Status Tracer::WatchProcesses() {
  for (bpf_program* prog : {skel_->progs.ctxagent_exec, skel_->progs.ctxagent_exit}) {
    bpf_link* l = bpf_program__attach(prog);
    if (l == nullptr) return absl::ErrnoToStatus(errno, "cannot attach the process tracepoints");
    process_links_.push_back(l);
  }
  return absl::OkStatus();
}

int Tracer::Drain() { return ring_buffer__consume(ring_); }

TracerCounters Tracer::counters() const {
  TracerCounters c;
  c.submitted = SumPerCpu(skel_->maps.submitted, 0);
  for (uint32_t r = 0; r < DROP_REASONS; ++r) c.dropped[r] = SumPerCpu(skel_->maps.drops, r);
  return c;
}

std::array<uint64_t, CTX_HOOKS> Tracer::hook_hits() const {
  std::array<uint64_t, CTX_HOOKS> h{};
  for (uint32_t k = 0; k < CTX_HOOKS; ++k) h[k] = SumPerCpu(skel_->maps.hook_hits, k);
  return h;
}

int Tracer::probe_fd() const { return bpf_program__fd(skel_->progs.ctxagent_probe); }

size_t Tracer::attached_probes() const {
  size_t n = 0;
  for (const auto& a : attachments_) n += a.links.size();
  return n;
}

}  // namespace ctxagent
