module example.com/ctxagent-bench

go 1.19
