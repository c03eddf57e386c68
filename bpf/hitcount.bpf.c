// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Counts uprobe hits per attachment (the attach cookie is the slot). Used to check that a planned
// probe site fires exactly once per call, and to calibrate the per-hit cost of a probe on this
// machine.
// clang-format off: vmlinux.h defines the kernel types the libbpf headers use.
#include "vmlinux.h"
// clang-format on
#include <bpf/bpf_helpers.h>

#include "bpf/hitcount.h"

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, HITCOUNT_SLOTS);
  __type(key, __u32);
  __type(value, __u64);
} hits SEC(".maps");

SEC("uprobe")
int count_hit(struct pt_regs *ctx) {
  __u32 slot = (__u32)bpf_get_attach_cookie(ctx);
  __u64 *n = bpf_map_lookup_elem(&hits, &slot);
  if (n) *n += 1;
  return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
