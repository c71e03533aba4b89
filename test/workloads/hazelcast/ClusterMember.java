// A Hazelcast member that joins by multicast discovery only, as a cluster on a flat network does:
// `java ClusterMember <address>` binds to <address> (the pod's own) and prints, so a test can follow
// it from its stdout:
//   starting <epoch ms>                      when it starts Hazelcast (the JVM is up)
//   view <epoch ms> <n> <address:port>,...   once joined, and on every membership change
import com.hazelcast.cluster.Member;
import com.hazelcast.cluster.MembershipEvent;
import com.hazelcast.cluster.MembershipListener;
import com.hazelcast.config.Config;
import com.hazelcast.config.JoinConfig;
import com.hazelcast.core.Hazelcast;
import com.hazelcast.core.HazelcastInstance;
import java.util.Set;
import java.util.stream.Collectors;

public class ClusterMember {
  public static void main(String[] args) {
    if (args.length != 1) {
      System.err.println("usage: ClusterMember <address to bind>");
      System.exit(2);
    }
    Config config = new Config();
    config.setClusterName("castnet-workload");
    // A killed member must leave the view within seconds, not the default minute.
    config.setProperty("hazelcast.heartbeat.interval.seconds", "1");
    config.setProperty("hazelcast.max.no.heartbeat.seconds", "10");
    config.setProperty("hazelcast.phone.home.enabled", "false");
    config.setProperty("hazelcast.socket.bind.any", "false");
    config.getNetworkConfig().setPort(5701).setPortAutoIncrement(false);
    config.getNetworkConfig().getInterfaces().setEnabled(true).addInterface(args[0]);
    JoinConfig join = config.getNetworkConfig().getJoin();
    join.getAutoDetectionConfig().setEnabled(false);
    join.getTcpIpConfig().setEnabled(false);
    // Hazelcast's defaults (224.2.2.3:54327), stated so the test's expectations are visible here.
    join.getMulticastConfig().setEnabled(true).setMulticastGroup("224.2.2.3").setMulticastPort(54327);
    System.out.println("starting " + System.currentTimeMillis());
    HazelcastInstance hz = Hazelcast.newHazelcastInstance(config);
    hz.getCluster()
        .addMembershipListener(
            new MembershipListener() {
              public void memberAdded(MembershipEvent e) {
                print(e.getMembers());
              }

              public void memberRemoved(MembershipEvent e) {
                print(e.getMembers());
              }
            });
    print(hz.getCluster().getMembers());
  }

  static synchronized void print(Set<Member> members) {
    String list =
        members.stream()
            .map(m -> m.getAddress().getHost() + ":" + m.getAddress().getPort())
            .sorted()
            .collect(Collectors.joining(","));
    System.out.println("view " + System.currentTimeMillis() + " " + members.size() + " " + list);
    System.out.flush();
  }
}
