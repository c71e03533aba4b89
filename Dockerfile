# castnet image: the agent and controller (`castnet`, Node.js) and the CNI plugin (`castnet-cni`, a
# static Go binary the agent's init container copies onto the node). Layout: /opt/castnet/bin/castnet,
# /opt/castnet/bin/castnet-cni, /opt/castnet/dist, /opt/castnet/node_modules (the chart runs these
# paths). test/chart/dockerfile.test.ts checks this file statically: no Docker engine runs here.

FROM node:20-bookworm AS build-ts
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY cmd/castnet/ cmd/castnet/
COPY pkg/ pkg/
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev

FROM golang:1.26-bookworm AS build-cni
WORKDIR /src
COPY cmd/castnet-cni/ ./
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/castnet-cni .

FROM node:20-bookworm-slim
# iproute2: the agent batches VXLAN links and FDB entries through `ip -batch` and `bridge -batch`.
# nftables: the agent's filter of castnet's UDP ports (only registered nodes), applied with `nft -f`.
RUN apt-get update && apt-get install -y --no-install-recommends iproute2 nftables \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/castnet
COPY --from=build-ts /src/package.json ./package.json
COPY --from=build-ts /src/node_modules ./node_modules
COPY --from=build-ts /src/dist ./dist
COPY --from=build-cni /out/castnet-cni ./bin/castnet-cni
COPY scripts/castnet.sh ./bin/castnet
# Non-root by default: the controller and the uninstall wait Job run as this user. The agent and the
# node install/cleanup containers must run as root (netlink, setns, host paths); the chart sets
# runAsUser: 0 with only the capabilities they need.
USER 65532:65532
ENTRYPOINT ["/opt/castnet/bin/castnet"]
