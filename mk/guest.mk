# The lab's real guests (pkg/lab/guest.ts): Debian's cloud kernel and the project's initramfs, built
# into .cache/guest/ by scripts/guest/build.sh (a no-op while its inputs are unchanged).
.PHONY: guest-image

guest-image: debian-deps
	@scripts/guest/build.sh

deps: guest-image
