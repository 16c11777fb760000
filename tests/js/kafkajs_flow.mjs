// One application flow with kafkajs against the broker at argv[2]:
// create a topic, produce keyed records (idempotent, gzip and uncompressed),
// consume them in a consumer group with manual commits, read the committed offsets back,
// and describe the group. Prints one JSON object with what it saw.
import kafkajs from 'kafkajs'

const { Kafka, CompressionTypes, logLevel } = kafkajs
const [, , broker, topic, countArg] = process.argv
const count = Number(countArg)
const kafka = new Kafka({ clientId: 'edplog-kafkajs', brokers: [broker], logLevel: logLevel.ERROR })

const deadline = setTimeout(() => {
  console.error('kafkajs flow: timed out')
  process.exit(3)
}, 60000)

const admin = kafka.admin()
await admin.connect()
const created = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true })
const metadata = await admin.fetchTopicMetadata({ topics: [topic] })

const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
await producer.connect()
const half = Math.floor(count / 2)
const batch = (from, to) =>
  Array.from({ length: to - from }, (_, i) => ({ key: `k${from + i}`, value: `v${from + i}` }))
await producer.send({ topic, acks: -1, messages: batch(0, half) })
await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages: batch(half, count) })
await producer.disconnect()

const groupId = `${topic}-group`
const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 })
await consumer.connect()
await consumer.subscribe({ topic, fromBeginning: true })
const seen = []
await new Promise((resolve, reject) => {
  consumer
    .run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        seen.push({ partition, offset: Number(message.offset), key: message.key.toString(), value: message.value.toString() })
        await consumer.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }])
        if (seen.length === count) resolve()
      }
    })
    .catch(reject)
})
const description = await admin.describeGroups([groupId])
await consumer.disconnect()
const committed = await admin.fetchOffsets({ groupId, topics: [topic] })
const groups = await admin.listGroups()
await admin.disconnect()
clearTimeout(deadline)

console.log(JSON.stringify({
  created,
  partitions: metadata.topics[0].partitions.length,
  seen,
  committed: committed[0].partitions.map(p => ({ partition: p.partition, offset: Number(p.offset) })),
  group: { state: description.groups[0].state, protocolType: description.groups[0].protocolType, members: description.groups[0].members.length },
  listed: groups.groups.map(g => g.groupId)
}))
