/**
 * A thread of the runtime's shared pool (issue #28): one long Piscina task
 * that runs the consumer loops the main thread gives it over its port, one
 * per mailbox it serves (a lane), side by side on its event loop. A lane is
 * today's ConsumerLoop with the thread's parker (parker.ts) and the
 * thread's custom codecs; a handler module is imported the first time one
 * of its lanes starts here (import() caches it for the thread). The thread
 * also answers start()'s probe of a mailbox's handler. It returns when the
 * main thread tells it to quit and its last lane has ended.
 */
import { threadId } from 'node:worker_threads';
import type { PayloadCodec } from '../../runtime/shared/codec.js';
import { toErrorInfo } from '../../runtime/shared/errors.js';
import { POOL_LANE } from '../../runtime/shared/layout.js';
import { PoolBoard } from '../../runtime/shared/pool-board.js';
import type { ConsumerTask, FromPoolThread, PoolThreadTask, ToPoolThread } from '../../runtime/shared/protocol.js';
import { probe } from '../loop/load.js';
import { ConsumerLoop, type LoopHooks } from '../loop/loop.js';
import { ThreadParker } from './parker.js';

export async function poolThread(task: PoolThreadTask): Promise<{ threadId: number }> {
  const board = new PoolBoard(task.board);
  const parker = new ThreadParker(board, task.index);
  const customCodecs = new Map<string, PayloadCodec>();
  const port = task.port;
  const post = (m: FromPoolThread): void => port.postMessage(m);
  let lanes = 0;
  let quit = false;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const endIfQuit = (): void => {
    if (quit && lanes === 0) done();
  };

  const startLane = (key: number, t: Omit<ConsumerTask, 'rings'>): void => {
    const full: ConsumerTask = { ...t, rings: task.rings };
    const ref = task.rings[t.mailbox]!;
    const bit = Atomics.load(new Int32Array(ref.sab), POOL_LANE);
    let remove: (() => void) | null = null;
    const hooks: LoopHooks = {
      parker: (parts) => {
        const p = parker.add(parts, bit);
        remove = p.remove;
        return p;
      },
      customCodecs,
      othersWaiting: () => parker.othersWaiting(),
      mark: { i32: board.i32, index: board.runningWord(task.index), value: bit },
    };
    lanes++;
    void new ConsumerLoop(full, hooks)
      .run()
      .then(
        (result) => post({ t: 'lane-end', key, result }),
        // A loop that throws ends as a crashed thread would, but alone: the thread's other lanes go on.
        (err: unknown) => post({ t: 'lane-end', key, error: toErrorInfo(err) }),
      )
      .finally(() => {
        (remove as (() => void) | null)?.();
        lanes--;
        endIfQuit();
      });
  };

  port.on('message', (m: ToPoolThread) => {
    switch (m.t) {
      case 'lane':
        startLane(m.key, m.task);
        break;
      case 'probe':
        probe(m.task).then(
          (result) => post({ t: 'probe', id: m.id, result }),
          (err: unknown) => post({ t: 'probe', id: m.id, error: toErrorInfo(err) }),
        );
        break;
      case 'quit':
        quit = true;
        endIfQuit();
        break;
    }
  });
  post({ t: 'hello', threadId });
  await finished;
  port.close();
  return { threadId };
}
