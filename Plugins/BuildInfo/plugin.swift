// BuildInfo: compiles the git commit of the checkout into BackupCLI (`kaleem-backup --version`). A prebuild
// command: it runs before every build, and rewrites the generated file only when the commit changed, so an
// unchanged checkout rebuilds nothing. Outside a git checkout (a tarball) the commit is "unknown".
import Foundation
import PackagePlugin

@main
struct BuildInfo: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "generated")
        let file = output.appending(path: "BuildInfo.swift").path
        let script = """
        set -e
        mkdir -p "$1"
        commit=$(git -C "$2" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
        if [ "$commit" != unknown ] && [ -n "$(git -C "$2" status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit-dirty"; fi
        text="enum BuildInfo { static let commit = \\"$commit\\" }"
        if [ ! -f "$3" ] || [ "$(cat "$3")" != "$text" ]; then printf '%s' "$text" > "$3"; fi
        """
        return [.prebuildCommand(displayName: "BuildInfo: the git commit",
                                 executable: URL(fileURLWithPath: "/bin/sh"),
                                 arguments: ["-c", script, "build-info", output.path, context.package.directoryURL.path, file],
                                 outputFilesDirectory: output)]
    }
}
