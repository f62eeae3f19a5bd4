"""Amazon SQS: the webhook delivery queue (FIFO, one message group per workspace)."""
