/* Go's internal register ABI on amd64 (Go >= 1.17), named once. */
#ifndef CTXAGENT_BPF_GO_ABI_BPF_H_
#define CTXAGENT_BPF_GO_ABI_BPF_H_

/* Integer arguments in order: RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11. */
#define GO_ARG1(ctx) ((__u64)(ctx)->ax)
#define GO_ARG2(ctx) ((__u64)(ctx)->bx)
#define GO_ARG3(ctx) ((__u64)(ctx)->cx)
#define GO_ARG4(ctx) ((__u64)(ctx)->di)
#define GO_ARG5(ctx) ((__u64)(ctx)->si)
#define GO_ARG6(ctx) ((__u64)(ctx)->r8)
/* R14 holds the current g. */
#define GO_G(ctx) ((__u64)(ctx)->r14)

#endif /* CTXAGENT_BPF_GO_ABI_BPF_H_ */
