# The Hazelcast member test/workloads/hazelcast.test.ts runs: the jar from Maven Central (pinned in
# test/workloads/hazelcast/pom.xml) and the member program compiled against it, both in
# .cache/hazelcast/. Part of `make deps`; a second run finds both files and does nothing (offline).
.PHONY: hazelcast-deps

HAZELCAST_DIR := $(CACHE)/hazelcast

deps: hazelcast-deps
hazelcast-deps: $(HAZELCAST_DIR)/classes/ClusterMember.class

# mvn and javac come from the Debian packages (scripts/debian-packages.txt).
$(HAZELCAST_DIR)/lib/.fetched: test/workloads/hazelcast/pom.xml | debian-deps
	mvn -q -B -f $< dependency:copy-dependencies -DoutputDirectory=$(HAZELCAST_DIR)/lib
	@touch $@

$(HAZELCAST_DIR)/classes/ClusterMember.class: test/workloads/hazelcast/ClusterMember.java $(HAZELCAST_DIR)/lib/.fetched | debian-deps
	@mkdir -p $(@D)
	javac -d $(@D) -cp '$(HAZELCAST_DIR)/lib/*' $<
