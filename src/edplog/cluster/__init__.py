"""A replicated cluster coordinated by ZooKeeper (see docs/cluster.md).

Kafka's ZooKeeper-era design with its later fixes: brokers register ephemeral znodes, one
controller is elected by an ephemeral znode and fences every metadata write with the
controller epoch, partition state changes only by versioned writes, followers replicate with
the Fetch API and truncate by leader epoch. Nothing here is needed by a single node.
"""
