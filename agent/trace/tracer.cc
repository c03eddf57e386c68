#include "agent/trace/tracer.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ctxagent_bpf.skel.h"
#include "symbols/probe_table.h"
#include "symbols/status_macros.h"

namespace ctxagent {

go_binary_config ConfigFor(const symbols::GoBinary& bin) {
  const symbols::GoOffsets& o = bin.offsets();
  go_binary_config c{};
  c.g_goid = o.g_goid;
  c.g_parent_goid = o.g_parent_goid;
  c.g_gopc = o.g_gopc;
  c.g_startpc = o.g_startpc;
  c.g_sched_ctxt = o.g_sched + o.gobuf_ctxt;
  c.timerctx_deadline = o.timerctx_deadline;
  return c;
}

const char* DropReasonName(int reason) {
  switch (reason) {
    case DROP_RINGBUF_FULL:
      return "ringbuf_full";
    case DROP_NO_CONFIG:
      return "no_config";
    case DROP_READ_FAILED:
      return "read_failed";
  }
  return "unknown";
}

uint64_t TracerCounters::dropped_total() const {
  uint64_t n = 0;
  for (uint64_t d : dropped) n += d;
  return n;
}

namespace {

std::atomic<bool> g_libbpf_verbose{false};
std::atomic<bool> g_libbpf_quiet{false};  // while probing for a kernel feature

// libbpf's warnings (a verifier log, a failed relocation) go to stderr; its debug chatter only with
// --verbose: it would garble the terminal view.
int PrintLibbpf(enum libbpf_print_level level, const char* format, va_list args) {
  if ((level == LIBBPF_DEBUG || g_libbpf_quiet) && !g_libbpf_verbose) return 0;
  return vfprintf(stderr, format, args);
}

// The probe programs (ctxagent_probe and the GO_PROBE handlers it tail-calls): the uprobes.
std::vector<bpf_program*> ProbePrograms(const bpf_object* obj) {
  std::vector<bpf_program*> progs;
  bpf_program* p;
  bpf_object__for_each_program(p, obj) {
    if (bpf_program__type(p) == BPF_PROG_TYPE_KPROBE) progs.push_back(p);
  }
  return progs;
}

// Opens and loads the object with the probe programs for one kind of link; an errno on failure.
int OpenAndLoad(bool multi, uint32_t ring_bytes, ctxagent_bpf** out) {
  ctxagent_bpf* skel = ctxagent_bpf__open();
  if (skel == nullptr) return errno;
  bpf_map__set_max_entries(skel->maps.events, ring_bytes);
  // Declared as uprobe.multi; a plain uprobe has no expected attach type.
  if (!multi) {
    for (bpf_program* p : ProbePrograms(skel->obj)) {
      bpf_program__set_expected_attach_type(p, static_cast<bpf_attach_type>(0));
    }
  }
  if (ctxagent_bpf__load(skel) != 0) {
    const int err = errno;
    ctxagent_bpf__destroy(skel);
    return err;
  }
  *out = skel;
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

void SetLibbpfVerbose(bool verbose) { g_libbpf_verbose = verbose; }

bool Tracer::KernelHasMultiLinks() {
  // uprobe_multi links exist since Linux 6.6, but until 6.10 their pid filter let only the
  // process's main thread through (kernel commit "bpf: fix multi-uprobe PID filtering logic").
  utsname u;
  int major = 0, minor = 0;
  return uname(&u) == 0 && sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
         (major > 6 || (major == 6 && minor >= 10));
}

absl::StatusOr<std::unique_ptr<Tracer>> Tracer::Create(Handler handler, uint32_t ring_bytes,
                                                       Links links) {
  if (ring_bytes < 4096 || (ring_bytes & (ring_bytes - 1)) != 0) {
    return absl::InvalidArgumentError("ring buffer size must be a power of two of at least 4096");
  }
  std::unique_ptr<Tracer> t(new Tracer());
  t->handler_ = std::move(handler);
  libbpf_set_print(PrintLibbpf);
  int err = EOPNOTSUPP;
  if (links == Links::kMultiWhenSupported && KernelHasMultiLinks()) {
    // A kernel without uprobe_multi rejects the program's attach type at load.
    g_libbpf_quiet = true;
    err = OpenAndLoad(/*multi=*/true, ring_bytes, &t->skel_);
    g_libbpf_quiet = false;
    t->multi_ = err == 0;
  }
  if (err != 0) err = OpenAndLoad(/*multi=*/false, ring_bytes, &t->skel_);
  if (err != 0) {
    return absl::ErrnoToStatus(
        err,
        "cannot load the BPF programs (needs root or CAP_BPF+CAP_PERFMON+CAP_SYS_ADMIN, and a "
        "kernel with BTF)");
  }
  RETURN_IF_ERROR(t->FillHandlers());
  t->ring_ = ring_buffer__new(bpf_map__fd(t->skel_->maps.events), OnRingEvent, t.get(), nullptr);
  if (t->ring_ == nullptr) return absl::InternalError("cannot open the BPF ring buffer");
  // libbpf's own epoll is level-triggered: it would return at once whenever anything sits in the
  // ring, turning every wait into a busy drain.
  t->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev = {};
  ev.events = EPOLLIN | EPOLLET;
  if (t->epoll_fd_ < 0 ||
      epoll_ctl(t->epoll_fd_, EPOLL_CTL_ADD, bpf_map__fd(t->skel_->maps.events), &ev) != 0) {
    return absl::ErrnoToStatus(errno, "cannot wait on the BPF ring buffer");
  }
  return t;
}

Tracer::~Tracer() {
  while (!attachments_.empty()) Detach(attachments_.front().slot);
  for (bpf_link* l : process_links_) bpf_link__destroy(l);
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (ring_ != nullptr) ring_buffer__free(ring_);
  if (skel_ != nullptr) ctxagent_bpf__destroy(skel_);
}

absl::StatusOr<uint32_t> Tracer::Attach(const Process& process, const symbols::GoBinary& bin,
                                        bool goroutine_exits) {
  if (absl::Status s = process.CheckRuns(bin.identity()); !s.ok()) return s;
  return AttachPlan(process.pid(), bin, goroutine_exits);
}

absl::StatusOr<uint32_t> Tracer::AttachEveryProcess(const symbols::GoBinary& bin,
                                                    bool goroutine_exits) {
  return AttachPlan(-1, bin, goroutine_exits);
}

absl::StatusOr<uint32_t> Tracer::AttachPlan(pid_t pid, const symbols::GoBinary& bin,
                                            bool goroutine_exits) {
  if (absl::Status s = bin.VerifyProbeSites(); !s.ok()) return s;
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
    free_slots_.push_back(slot);
    return absl::ErrnoToStatus(errno, "cannot write the binary's configuration");
  }
  Attachment a{pid, slot, {}};
  absl::Status status;
  std::vector<const symbols::Probe*> plan;
  for (const symbols::Probe& p : bin.plan().probes) {
    if (goroutine_exits || p.order != symbols::AttachOrder::kGoroutineEnd) plan.push_back(&p);
  }
  for (size_t first = 0; first < plan.size() && status.ok();) {
    std::vector<const symbols::Probe*> group;
    // Endings and beginnings are attached as separate groups: the plan's order (endings first)
    // must hold between them, and the reverse at detach.
    for (size_t i = first; i < plan.size() && symbols::IsEnding(plan[i]->order) ==
                                                  symbols::IsEnding(plan[first]->order);
         ++i) {
      group.push_back(plan[i]);
    }
    first += group.size();
    status = AttachGroup(pid, bin, slot, group, a);
  }
  if (!status.ok()) {
    for (auto l = a.links.rbegin(); l != a.links.rend(); ++l) bpf_link__destroy(*l);
    free_slots_.push_back(slot);
    return status;
  }
  attachments_.push_back(std::move(a));
  return slot;
}

absl::Status Tracer::AttachGroup(pid_t pid, const symbols::GoBinary& bin, uint32_t slot,
                                 const std::vector<const symbols::Probe*>& probes, Attachment& a) {
  // Through the file `bin` keeps open: a path could name another file by now.
  const std::string target = bin.fd_path();
  auto cookie = [&](const symbols::Probe& p) {
    return CTX_COOKIE(slot, handler_index_.at(p.program), p.abi,
                      p.site.emulated ? TRAP_EMULATED : TRAP_STEPPED);
  };
  if (multi_) {
    std::vector<unsigned long> offsets;  // NOLINT(runtime/int): libbpf's type
    std::vector<__u64> cookies;
    for (const symbols::Probe* p : probes) {
      offsets.push_back(p->site.file_offset);
      cookies.push_back(cookie(*p));
    }
    LIBBPF_OPTS(bpf_uprobe_multi_opts, opts, .offsets = offsets.data(), .cookies = cookies.data(),
                .cnt = offsets.size());
    bpf_link* l = bpf_program__attach_uprobe_multi(skel_->progs.ctxagent_probe, pid, target.c_str(),
                                                   nullptr, &opts);
    if (l == nullptr) {
      std::vector<std::string> names;
      for (const symbols::Probe* p : probes) names.push_back(p->function);
      return absl::ErrnoToStatus(
          errno, absl::StrCat("cannot attach the uprobes of ", absl::StrJoin(names, ", "), " in ",
                              bin.path(), " (pid ", pid, ")"));
    }
    a.links.push_back(l);
    a.probes += probes.size();
    return absl::OkStatus();
  }
  for (const symbols::Probe* p : probes) {
    LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = cookie(*p));
    bpf_link* l = bpf_program__attach_uprobe_opts(skel_->progs.ctxagent_probe, pid, target.c_str(),
                                                  p->site.file_offset, &opts);
    if (l == nullptr) {
      return absl::ErrnoToStatus(errno, absl::StrCat("cannot attach a uprobe to ", p->function,
                                                     " (", symbols::SiteKindName(p->kind), ") in ",
                                                     bin.path(), " (pid ", pid, ")"));
    }
    a.links.push_back(l);
    ++a.probes;
  }
  return absl::OkStatus();
}

void Tracer::Detach(uint32_t attachment) {
  for (auto it = attachments_.begin(); it != attachments_.end();) {
    if (it->slot == attachment) {
      // Reverse attach order: beginnings go first, so nothing starts unseen while its end is
      // still watched.
      for (auto l = it->links.rbegin(); l != it->links.rend(); ++l) bpf_link__destroy(*l);
      free_slots_.push_back(it->slot);
      it = attachments_.erase(it);
    } else {
      ++it;
    }
  }
}

absl::Status Tracer::WatchExec(pid_t pid) {
  skel_->bss->watched_tgid = static_cast<uint32_t>(pid);
  bpf_link* l = bpf_program__attach(skel_->progs.ctxagent_exec);
  if (l == nullptr) return absl::ErrnoToStatus(errno, "cannot attach the exec tracepoint");
  process_links_.push_back(l);
  return absl::OkStatus();
}

absl::Status Tracer::WatchProcesses() {
  for (bpf_program* prog : {skel_->progs.ctxagent_exec, skel_->progs.ctxagent_exit}) {
    bpf_link* l = bpf_program__attach(prog);
    if (l == nullptr) return absl::ErrnoToStatus(errno, "cannot attach the process tracepoints");
    process_links_.push_back(l);
  }
  return absl::OkStatus();
}

void Tracer::ArmHitAlarm(uint64_t hits) {
  // Off while resetting, so that no probe compares the new count with the old threshold.
  skel_->bss->alarm_hits = 0;
  skel_->bss->alarm_count = 0;
  skel_->bss->alarm_sent = 0;
  __atomic_store_n(&skel_->bss->alarm_hits, hits, __ATOMIC_RELEASE);
}

bool Tracer::HitAlarmRang() const {
  const uint64_t armed = __atomic_load_n(&skel_->bss->alarm_hits, __ATOMIC_ACQUIRE);
  return armed > 0 && __atomic_load_n(&skel_->bss->alarm_count, __ATOMIC_RELAXED) >= armed;
}

void Tracer::Quiet(const ctx_exec_file& file) {
  const uint8_t one = 1;
  bpf_map__update_elem(skel_->maps.quiet_files, &file, sizeof(file), &one, sizeof(one), BPF_ANY);
}

void Tracer::SetTraced(pid_t pid, bool traced) {
  const uint32_t tgid = static_cast<uint32_t>(pid);
  if (traced) {
    const uint8_t one = 1;
    bpf_map__update_elem(skel_->maps.traced_tgids, &tgid, sizeof(tgid), &one, sizeof(one), BPF_ANY);
  } else {
    bpf_map__delete_elem(skel_->maps.traced_tgids, &tgid, sizeof(tgid), 0);
  }
}

// A negative return stops libbpf's drain after this event (which it counts as consumed).
constexpr int kDrainLimitReached = -ECANCELED;

int Tracer::OnRingEvent(void* ctx, void* data, size_t size) {
  Tracer& t = *static_cast<Tracer*>(ctx);
  if (size >= sizeof(ctx_event) && static_cast<const ctx_event*>(data)->type != EV_HIT_ALARM) {
    t.handler_(*static_cast<const ctx_event*>(data));
  }
  ++t.handled_;
  return --t.drain_left_ > 0 ? 0 : kDrainLimitReached;
}

int Tracer::Drain(int limit) {
  if (limit <= 0) return 0;
  const uint64_t before = handled_;
  drain_left_ = limit;
  ring_buffer__consume(ring_);
  return static_cast<int>(handled_ - before);
}

bool Tracer::Wait(absl::Duration timeout) {
  if (timeout <= absl::ZeroDuration()) return false;
  // Rounded up: a wait that ends a little before a deadline would only wake again for nothing.
  const int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(timeout, absl::Milliseconds(1)));
  epoll_event ev;
  return epoll_wait(epoll_fd_, &ev, 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30))) > 0;
}

TracerCounters Tracer::counters() const {
  TracerCounters c;
  c.submitted = SumPerCpu(skel_->maps.submitted, 0);
  for (uint32_t r = 0; r < DROP_REASONS; ++r) c.dropped[r] = SumPerCpu(skel_->maps.drops, r);
  return c;
}

TrapHits Tracer::trap_hits() const {
  TrapHits h{};
  for (uint32_t k = 0; k < CTX_TRAPS; ++k) h[k] = SumPerCpu(skel_->maps.trap_hits, k);
  return h;
}

absl::Status Tracer::FillHandlers() {
  // The table and the object agree: every row's program exists, every handler has a row.
  for (const symbols::ProbeRow& row : symbols::kProbeTable) {
    if (handler_index_.count(row.program) > 0) continue;
    const bpf_program* p = bpf_object__find_program_by_name(skel_->obj, row.program);
    if (p == nullptr) {
      return absl::InternalError(absl::StrCat("the probe table's ", row.function,
                                              " row names no BPF program ", row.program));
    }
    const uint32_t index = handler_index_.size();
    const int fd = bpf_program__fd(p);
    if (index >= CTX_MAX_HANDLERS ||
        bpf_map__update_elem(skel_->maps.handlers, &index, sizeof(index), &fd, sizeof(fd),
                             BPF_ANY) != 0) {
      return absl::InternalError(absl::StrCat("cannot install BPF handler ", row.program));
    }
    handler_index_.emplace(row.program, index);
  }
  for (bpf_program* p : ProbePrograms(skel_->obj)) {
    if (p != skel_->progs.ctxagent_probe && handler_index_.count(bpf_program__name(p)) == 0) {
      return absl::InternalError(
          absl::StrCat("no probe table row names BPF program ", bpf_program__name(p)));
    }
  }
  return absl::OkStatus();
}

int Tracer::probe_fd() const { return bpf_program__fd(skel_->progs.ctxagent_probe); }

size_t Tracer::attached_probes() const {
  size_t n = 0;
  for (const auto& a : attachments_) n += a.probes;
  return n;
}

}  // namespace ctxagent
