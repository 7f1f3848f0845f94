"""Point-in-time recovery: base backups, restore to a time, the PITR drill, local servers."""
