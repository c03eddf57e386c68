module example.com/scenarios

go 1.19
