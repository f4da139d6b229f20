import Foundation
import TestSupport
import Testing

/// Review round 2 of throwaway MongoDB drills (attack2).
@Suite(.blockingThreads) struct DrillAttackTests {
    /// The next drill removes the containers of drills that died (their process is gone), never the container
    /// of a drill still running beside it: a manual `drill` while the daemon's drill waits for its mongod used
    /// to `docker rm -f` every `kb-drill-*`, and the other drill failed (an error, BackupDrillFailing).
    @Test func aDrillRemovesOnlyTheContainersOfDeadDrills() throws {
        let s = MongoEndToEndTests.Setup(extra: "    oplog: true")
        let env = s.env(["DOCKER_CONTAINERS": s.dir.file("containers.json")])
        #expect(try s.run(["backup"], env).status == 0)
        let docker = MongoEndToEndTests.standIns + "/docker"
        // A process that has ended: its pid names a dead drill.
        let ended = Process()
        ended.executableURL = URL(fileURLWithPath: "/bin/true")
        try ended.run()
        ended.waitUntilExit()
        let live = "kb-drill-\(getpid())-running", dead = "kb-drill-\(ended.processIdentifier)-killed", old = "kb-drill-abc123-1"
        for name in [live, dead, old] {
            let port = try runProcess("/usr/bin/python3", ["-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"])
            let started = try runProcess(docker, ["run", "-d", "--rm", "--name", name, "-p", "127.0.0.1:\(port.stdout.trimmingCharacters(in: .whitespacesAndNewlines)):27017", "mongo:4.0"], environment: env)
            #expect(started.status == 0, "\(started.stderr)")
        }
        defer { _ = try? runProcess(docker, ["rm", "-f", live, dead, old], environment: env) }
        let drill = try s.run(["drill", "--json"], ["DOCKER_CONTAINERS": s.dir.file("containers.json")])
        #expect(drill.status == 0, "\(drill.stdout) \(drill.stderr)")
        let left = try runProcess(docker, ["ps", "-a", "--filter", "name=kb-drill-", "--format", "{{.Names}}"], environment: env)
        #expect(left.stdout.split(separator: "\n").map(String.init) == [live], "\(left.stdout)")
    }
}
