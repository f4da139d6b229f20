import BackupCLI

KaleemBackup.runMain()
