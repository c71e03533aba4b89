module castnet.io/castnet-cni

go 1.26
