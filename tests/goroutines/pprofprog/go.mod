module example.com/pprofprog

go 1.19
