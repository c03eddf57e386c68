/* Shared between hitcount.bpf.c and user space. */
#ifndef CTXAGENT_BPF_HITCOUNT_H_
#define CTXAGENT_BPF_HITCOUNT_H_

#define HITCOUNT_SLOTS 64

#endif /* CTXAGENT_BPF_HITCOUNT_H_ */
