module example.com/hostileprog

go 1.19
