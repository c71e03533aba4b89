# The README's main command: the multi-node lab on this machine (docs/lab.md).
.PHONY: lab lab-clean

lab: deps build
	bin/castnet lab run

lab-clean: build
	bin/castnet lab clean
