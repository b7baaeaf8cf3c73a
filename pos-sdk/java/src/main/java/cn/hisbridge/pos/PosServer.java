package cn.hisbridge.pos;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.text.SimpleDateFormat;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import java.util.Map;
import java.util.TimeZone;
import java.util.TreeMap;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The POS side of docs/pos-protocol.md: give it the app's {@link PaymentBackend} and
 * {@link TransactionStore}, then call {@link #serve} with the streams of each connection (an
 * accessory's {@code ParcelFileDescriptor}, a serial port): it answers the bridge until the
 * connection ends, and is called again on the next one. Transactions outlive connections: a
 * payment that ends while the cable is out is stored and answered to the bridge's QUERY.
 *
 * <p>The rules the bridge relies on, kept here: a reference is executed at most once (stored
 * before the backend acts, answered from the store ever after); one money transaction at a
 * time (others get BUSY; QUERY, CANCEL, PING, INFO, TOTALS always answered); QUERY answers from
 * the store, including after an app restart, when transactions that were running are settled
 * by asking the backend ({@link PaymentBackend#query}).
 */
public final class PosServer {
    /** The POS's identity and clock. */
    public static final class Config {
        /** 1-32 of A-Z a-z 0-9 _ -: the device ID given to the HIS. */
        public String deviceId = "POS-0001";
        public String version = "1.0";
        public String model = "Android POS";
        /** The POS clock for {@code time} fields and TOTALS days: China Standard Time. */
        public TimeZone zone = TimeZone.getTimeZone("Asia/Shanghai");
        /** How often a transaction left running by a restart is asked about again. */
        public long recoveryQueryMs = 5000;
        /** The serial line's speed, for its timing (0 for USB and accessories). */
        public int baud;
    }

    /** What the app shows the cashier; called with the server's lock held: return quickly. */
    public interface Listener {
        void onTransaction(Transaction t);

        void onConnection(boolean connected);
    }

    private final TransactionStore store;
    private final PaymentBackend backend;
    private final Config cfg;
    private final ScheduledExecutorService worker = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "pos-payment");
        t.setDaemon(true);
        return t;
    });
    private Listener listener;
    /** The money transaction running (SALE, REFUND, or a reversal), or null. */
    private Transaction current;
    private final AtomicBoolean cancelRequested = new AtomicBoolean();
    /** The link of the connection being served, or null, and its loop's queue (to wake it). */
    private Link link;
    private BlockingQueue<Object> wake;
    private volatile boolean stopping;

    public PosServer(TransactionStore store, PaymentBackend backend, Config cfg) throws IOException {
        this.store = store;
        this.backend = backend;
        this.cfg = cfg;
        recover();
    }

    public synchronized void setListener(Listener l) {
        this.listener = l;
    }

    /** Stops: {@link #serve} returns; a payment running in the backend still ends and is stored. */
    public void stop() {
        stopping = true;
    }

    private String now() {
        SimpleDateFormat f = new SimpleDateFormat("yyyyMMddHHmmss");
        f.setTimeZone(cfg.zone);
        return f.format(new Date());
    }

    private static long clock() {
        return System.nanoTime() / 1_000_000;
    }

    // -- connections ------------------------------------------------------------------------

    private static final Object EOF = new Object();
    private static final Object WAKE = new Object();

    /**
     * Serves one connection until its input ends or fails, or {@link #stop}. Returns normally;
     * IO errors of the connection end it (the bridge queries what it missed).
     */
    public void serve(InputStream in, OutputStream out) {
        BlockingQueue<Object> queue = new ArrayBlockingQueue<>(256);
        Thread reader = new Thread(() -> {
            byte[] buf = new byte[1024];
            try {
                int n;
                while ((n = in.read(buf)) >= 0) {
                    if (n > 0) {
                        byte[] c = new byte[n];
                        System.arraycopy(buf, 0, c, 0, n);
                        queue.put(c);
                    }
                }
            } catch (IOException | InterruptedException e) {
                // the connection ended
            }
            queue.offer(EOF);
        }, "pos-link-reader");
        reader.setDaemon(true);
        Link l = new Link((int) (System.nanoTime() % 9999) + 1, cfg.baud);
        synchronized (this) {
            link = l;
            wake = queue;
            if (listener != null) {
                listener.onConnection(true);
            }
        }
        reader.start();
        try {
            while (!stopping) {
                long dl;
                synchronized (this) {
                    dl = l.deadline();
                }
                long wait = dl < 0 ? 200 : Math.max(1, Math.min(200, dl - clock()));
                Object item = queue.poll(wait, TimeUnit.MILLISECONDS);
                if (item == EOF) {
                    break;
                }
                synchronized (this) {
                    if (item instanceof byte[]) {
                        byte[] b = (byte[]) item;
                        l.handleInput(b, 0, b.length, clock());
                    }
                    l.handleTimeout(clock());
                    Link.Event ev;
                    while ((ev = l.pollEvent()) != null) {
                        if (ev.kind == Link.Event.Kind.RECEIVED) {
                            onRequest(ev.body);
                        }
                        // GAVE_UP: the bridge did not ACK a frame 3 times; it queries what it missed.
                    }
                    flush(l, out);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (IOException e) {
            // the connection is gone
        } finally {
            synchronized (this) {
                if (link == l) {
                    link = null;
                    wake = null;
                }
                if (listener != null) {
                    listener.onConnection(false);
                }
            }
            reader.interrupt();
        }
    }

    private void flush(Link l, OutputStream out) throws IOException {
        byte[] b;
        boolean wrote = false;
        while ((b = l.pollTransmit()) != null) {
            out.write(b);
            wrote = true;
        }
        if (wrote) {
            out.flush();
        }
    }

    private void send(Message m) {
        if (link != null) {
            link.send(m.encode(), clock());
            wake.offer(WAKE);
        }
    }

    // -- requests ---------------------------------------------------------------------------

    private void onRequest(String body) {
        Message m;
        try {
            if (body == null) {
                throw new IllegalArgumentException("a frame without a sequence number");
            }
            m = Message.decode(body);
        } catch (IllegalArgumentException e) {
            send(new Message("ERROR").put("code", "BAD_REQUEST").put("msg", e.getMessage()));
            return;
        }
        try {
            switch (m.command) {
                case "HELLO":
                    send(new Message("HELLO").put("device", cfg.deviceId).put("ver", cfg.version).put("model", cfg.model));
                    break;
                case "PING":
                    send(new Message("PONG"));
                    break;
                case "INFO":
                    send(new Message("INFO").put("device", cfg.deviceId).put("ver", cfg.version)
                            .put("model", cfg.model).put("time", now()));
                    break;
                case "SALE":
                    sale(m);
                    break;
                case "REFUND":
                    refund(m);
                    break;
                case "CANCEL":
                    cancel(m);
                    break;
                case "QUERY":
                    query(m);
                    break;
                case "TOTALS":
                    totals(m);
                    break;
                default:
                    send(new Message("ERROR").put("code", "UNKNOWN_COMMAND").put("msg", "unknown command " + m.command));
            }
        } catch (IOException e) {
            // The store failed: nothing was started; the bridge will ask again.
            send(new Message("ERROR").put("code", "STORE_FAILED").put("msg", e.getMessage()));
        }
    }

    private static boolean validRef(String ref) {
        return ref != null && ref.length() <= 70 && ref.matches("[A-Za-z0-9_\\-@.]+");
    }

    private boolean badRequest(Message m, String... keys) {
        for (String k : keys) {
            boolean bad = k.equals("amount") ? m.getLong(k) <= 0 : k.equals("ref") || k.equals("orig")
                    ? !validRef(m.get(k)) : m.get(k) == null;
            if (bad) {
                send(new Message("ERROR").put("code", "BAD_REQUEST").put("msg", m.command + ": " + k + " is missing or invalid"));
                return true;
            }
        }
        return false;
    }

    /** A money command for a reference the POS has: never executed again (§4.2). */
    private boolean answerExisting(String ref) throws IOException {
        Transaction t = store.get(ref);
        if (t == null) {
            return false;
        }
        if (t.status.isFinal()) {
            send(t.result());
        }
        // still running: its RESULT comes when it ends
        return true;
    }

    private boolean busy(String ref) {
        if (current == null) {
            return false;
        }
        send(new Message("BUSY").put("ref", ref).put("current", current.ref));
        return true;
    }

    private void sale(Message m) throws IOException {
        if (badRequest(m, "ref", "amount")) {
            return;
        }
        String ref = m.get("ref");
        if (answerExisting(ref) || busy(ref)) {
            return;
        }
        Transaction t = new Transaction();
        t.ref = ref;
        t.op = Transaction.Op.SALE;
        t.amountFen = m.getLong("amount");
        t.description = m.get("desc");
        t.time = now();
        store.put(t); // before anything is shown or charged
        current = t;
        cancelRequested.set(false);
        changed(t);
        send(new Message("EVENT").put("ref", ref).put("stage", "WAIT_SCAN"));
        final Transaction sale = t.copy();
        worker.execute(() -> {
            PaymentBackend.Outcome o;
            try {
                o = backend.collect(sale.ref, sale.amountFen, sale.description, new PaymentBackend.Progress() {
                    @Override
                    public void userPaying() {
                        synchronized (PosServer.this) {
                            send(new Message("EVENT").put("ref", sale.ref).put("stage", "USER_PAYING"));
                        }
                    }

                    @Override
                    public boolean cancelled() {
                        return cancelRequested.get();
                    }
                });
            } catch (Exception e) {
                o = null; // unknown: ask the wallet
            }
            ended(sale, o);
        });
    }

    /** Whether an outcome leaves the transaction's fate unknown (asked of the wallet, then). */
    private static boolean unknown(PaymentBackend.Outcome o) {
        return o == null || o.status == null || o.status == Transaction.Status.IN_PROGRESS;
    }

    /** What the backend returned for a collection or a refund: recorded, or asked about. */
    private void ended(Transaction t, PaymentBackend.Outcome o) {
        if (unknown(o)) {
            // The backend could not say: ask the wallet until it can.
            worker.schedule(() -> settle(t), cfg.recoveryQueryMs, TimeUnit.MILLISECONDS);
            return;
        }
        if (t.op == Transaction.Op.SALE && o.status == Transaction.Status.PAID && cancelRequested.get()) {
            // The CANCEL crossed the payment: report PAID, then reverse it.
            finish(t, o, false);
            reverseNow(t.ref);
            return;
        }
        finish(t, o, true);
    }

    /** Records the outcome and reports it; {@code done} frees the POS for the next transaction. */
    private void finish(Transaction t, PaymentBackend.Outcome o, boolean done) {
        synchronized (this) {
            try {
                Transaction rec = store.get(t.ref);
                if (rec == null) {
                    rec = t.copy();
                }
                rec.status = o.status;
                if (o.channel != null) {
                    rec.channel = o.channel;
                }
                if (o.payNo != null) {
                    rec.payNo = o.payNo;
                }
                rec.code = o.code;
                rec.msg = o.msg;
                rec.time = now();
                store.put(rec);
                if (done && current != null && current.ref.equals(t.ref)) {
                    current = null;
                }
                changed(rec);
                send(rec.result());
            } catch (IOException e) {
                // Not stored: keep the POS busy with it and try again; QUERY says IN_PROGRESS.
                worker.schedule(() -> finish(t, o, done), 1, TimeUnit.SECONDS);
            }
        }
    }

    /** Asks the wallet about a transaction whose outcome the backend did not give. */
    private void settle(Transaction t) {
        PaymentBackend.Outcome o;
        try {
            o = backend.query(t);
        } catch (Exception e) {
            o = PaymentBackend.Outcome.inProgress();
        }
        if (o.status == null) {
            // The wallet never saw it: no money moved. The POS-side cancel says why (§4.5).
            o = PaymentBackend.Outcome.cancelled("POS_RESTARTED", "POS 重启，交易未发起 / the POS restarted before paying");
        }
        if (o.status == Transaction.Status.IN_PROGRESS && cancelRequested.get() && t.op == Transaction.Op.SALE) {
            reverseNow(t.ref); // the wallet's cancel: CANCELLED, or REVERSED if it had been paid
            return;
        }
        ended(t, o);
    }

    private void reverseNow(String ref) {
        worker.execute(() -> {
            Transaction sale;
            synchronized (this) {
                try {
                    sale = store.get(ref);
                } catch (IOException e) {
                    sale = null;
                }
            }
            if (sale == null) {
                return;
            }
            PaymentBackend.Outcome o;
            try {
                o = backend.reverse(sale);
            } catch (Exception e) {
                o = null;
            }
            if (unknown(o)) {
                final Transaction s = sale;
                worker.schedule(() -> reverseNow(s.ref), cfg.recoveryQueryMs, TimeUnit.MILLISECONDS);
                return;
            }
            if (o.status == Transaction.Status.FAILED) {
                // The wallet kept the money: the collection stands; the code says why.
                o = new PaymentBackend.Outcome(sale.status, sale.channel, sale.payNo, o.code, o.msg);
            }
            finish(sale, o, true);
        });
    }

    private void refund(Message m) throws IOException {
        if (badRequest(m, "ref", "orig", "amount")) {
            return;
        }
        String ref = m.get("ref");
        if (answerExisting(ref) || busy(ref)) {
            return;
        }
        Transaction t = new Transaction();
        t.ref = ref;
        t.op = Transaction.Op.REFUND;
        t.original = m.get("orig");
        t.amountFen = m.getLong("amount");
        t.time = now();
        Transaction orig = store.get(t.original);
        String refusal = null;
        if (orig == null || orig.op != Transaction.Op.SALE || orig.status != Transaction.Status.PAID) {
            refusal = "ORIG_NOT_PAID";
        } else {
            long refunded = 0;
            for (Transaction r : store.all()) {
                if (r.op == Transaction.Op.REFUND && t.original.equals(r.original)
                        && (r.status == Transaction.Status.REFUNDED || r.status == Transaction.Status.IN_PROGRESS)) {
                    refunded += r.amountFen;
                }
            }
            if (refunded + t.amountFen > orig.amountFen) {
                refusal = "REFUND_EXCEEDS";
            }
            t.channel = orig.channel;
        }
        if (refusal != null) {
            t.status = Transaction.Status.FAILED;
            t.code = refusal;
            t.msg = refusal.equals("REFUND_EXCEEDS") ? "退款金额超过可退金额 / more than can be refunded"
                    : "原交易不存在或未成功 / the collection is not paid";
            store.put(t);
            changed(t);
            send(t.result());
            return;
        }
        store.put(t);
        current = t;
        changed(t);
        final Transaction rf = t.copy();
        final Transaction original = orig.copy();
        worker.execute(() -> {
            PaymentBackend.Outcome o;
            try {
                o = backend.refund(rf.ref, original, rf.amountFen);
            } catch (Exception e) {
                o = null;
            }
            ended(rf, o);
        });
    }

    private void cancel(Message m) throws IOException {
        if (badRequest(m, "ref")) {
            return;
        }
        String ref = m.get("ref");
        Transaction t = store.get(ref);
        if (t == null) {
            send(new Message("RESULT").put("ref", ref).put("status", "NOT_FOUND"));
            return;
        }
        if (current != null && current.ref.equals(ref)) {
            // Running: the backend stops waiting for the code (CANCELLED), or the payment went
            // through and is reversed (PAID, then REVERSED). A refund runs to its end.
            if (t.op == Transaction.Op.SALE) {
                cancelRequested.set(true);
            }
            return;
        }
        if (t.op == Transaction.Op.SALE && t.status == Transaction.Status.PAID && current == null) {
            current = t;
            reverseNow(ref);
            return;
        }
        if (t.op == Transaction.Op.SALE && t.status == Transaction.Status.PAID) {
            send(new Message("BUSY").put("ref", ref).put("current", current.ref));
            return;
        }
        // Final already (failed, cancelled, reversed, a refund): the same answer as ever.
        send(t.result());
    }

    private void query(Message m) throws IOException {
        if (badRequest(m, "ref")) {
            return;
        }
        String ref = m.get("ref");
        Transaction t = store.get(ref);
        send(t != null ? t.result() : new Message("RESULT").put("ref", ref).put("status", "NOT_FOUND"));
    }

    private void totals(Message m) throws IOException {
        String date = m.get("date");
        if (date == null || !date.matches("\\d{8}")) {
            send(new Message("ERROR").put("code", "BAD_REQUEST").put("msg", "TOTALS: date must be YYYYMMDD"));
            return;
        }
        Map<String, long[]> by = new TreeMap<>();
        for (Transaction t : store.all()) {
            if (t.time == null || !t.time.startsWith(date) || t.channel == null) {
                continue;
            }
            long[] c = by.computeIfAbsent(t.channel, k -> new long[4]);
            if (t.op == Transaction.Op.SALE && t.status == Transaction.Status.PAID) {
                c[0]++;
                c[1] += t.amountFen;
            } else if (t.op == Transaction.Op.REFUND && t.status == Transaction.Status.REFUNDED) {
                c[2]++;
                c[3] += t.amountFen;
            }
        }
        Message r = new Message("TOTALS").put("date", date);
        for (Map.Entry<String, long[]> e : by.entrySet()) {
            long[] c = e.getValue();
            if (c[0] + c[2] > 0) {
                r.put(e.getKey(), c[0] + "/" + c[1] + "/" + c[2] + "/" + c[3]);
            }
        }
        send(r);
    }

    private void changed(Transaction t) {
        if (listener != null) {
            listener.onTransaction(t.copy());
        }
    }

    // -- restart ----------------------------------------------------------------------------

    /**
     * Transactions left running by a stop of the app are settled with the wallet: QUERY says
     * IN_PROGRESS meanwhile, and the first keeps the POS busy.
     */
    private void recover() throws IOException {
        List<Transaction> open = new ArrayList<>();
        for (Transaction t : store.all()) {
            if (!t.status.isFinal()) {
                open.add(t);
            }
        }
        for (Transaction t : open) {
            synchronized (this) {
                if (current == null) {
                    current = t;
                }
            }
            worker.execute(() -> settle(t));
        }
    }

    /** Whether a money transaction is running (for the app's screen). */
    public synchronized Transaction current() {
        return current == null ? null : current.copy();
    }
}
