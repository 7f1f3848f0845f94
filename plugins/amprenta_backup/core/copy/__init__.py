"""The second copy: every backup copied to another storage, checked there, kept by its own
retention, and read from when the primary cannot be (see ``workflow.CopyWorkflow``)."""
