import BackupCLI

await KaleemBackup.runMain()
