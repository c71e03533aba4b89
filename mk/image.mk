# Container images the multi-node test cluster imports, built on this machine without a registry or a
# container engine into .cache/images/ as docker archives (`ctr -n k8s.io images import <tar>`).
# IMAGES selects some of castnet, pause, workload, multus; CASTNET_IMAGE_TAG overrides castnet's tag.
# Each prints "<reference> <tarball>"; an unchanged image is not rebuilt (scripts/cluster/images.sh).
.PHONY: image

IMAGES ?= all

image: build
	@scripts/cluster/images.sh $(IMAGES)
