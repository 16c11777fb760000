// One application flow with @platformatic/kafka (a client that speaks only recent protocol
// versions) against the broker at argv[2]: create a topic, produce keyed records, consume
// them in a consumer group (argv[5]: the group protocol, "classic" or "consumer") committing
// each message, then list the committed offsets. Prints one JSON object with what it saw.
import { Admin, Consumer, Producer, ProduceAcks, stringDeserializers, stringSerializers } from '@platformatic/kafka'

const [, , broker, topic, countArg, groupProtocol = 'classic'] = process.argv
const count = Number(countArg)
const deadline = setTimeout(() => {
  console.error('platformatic flow: timed out')
  process.exit(3)
}, 60000)

const admin = new Admin({ clientId: 'edplog-platformatic', bootstrapBrokers: [broker] })
await admin.createTopics({ topics: [topic], partitions: 3, replicas: 1 })
const metadata = await admin.metadata({ topics: [topic] })

const producer = new Producer({ clientId: 'edplog-platformatic', bootstrapBrokers: [broker], serializers: stringSerializers })
const messages = Array.from({ length: count }, (_, i) => ({ topic, key: `k${i}`, value: `v${i}` }))
const sent = await producer.send({ messages, acks: ProduceAcks.ALL })
await producer.close()

const groupId = `${topic}-group`
const consumer = new Consumer({
  groupId,
  clientId: 'edplog-platformatic',
  bootstrapBrokers: [broker],
  deserializers: stringDeserializers,
  groupProtocol,
  sessionTimeout: 10000,
  heartbeatInterval: 500
})
const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false })
const seen = []
for await (const message of stream) {
  seen.push({ partition: message.partition, offset: Number(message.offset), key: message.key, value: message.value })
  await message.commit()
  if (seen.length === count) break
}
const committed = await consumer.listCommittedOffsets({ topics: [{ topic, partitions: [0, 1, 2] }] })
await stream.close()
await consumer.close()
await admin.close()
clearTimeout(deadline)

const offsets = committed.get(topic) ?? []
console.log(JSON.stringify({
  partitions: metadata.topics.get(topic).partitionsCount,
  sent: sent.offsets?.length ?? 0,
  seen,
  committed: Array.from(offsets, (offset, partition) => ({ partition, offset: Number(offset) }))
}))
