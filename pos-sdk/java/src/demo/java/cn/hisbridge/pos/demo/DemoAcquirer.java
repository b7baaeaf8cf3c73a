package cn.hisbridge.pos.demo;

import cn.hisbridge.pos.FileTransactionStore;
import cn.hisbridge.pos.PaymentBackend;
import cn.hisbridge.pos.Transaction;
import java.io.File;
import java.io.IOException;

/**
 * A simulated acquirer for the demo app and the tests: the amount rules of the Rust simulator
 * (docs/pos-simulator.md, the last two digits of the amount in fen), and a wallet ledger of its
 * own in a file, outside the app, as a real wallet's books are. Rule 98: the app dies (halt)
 * right after the money moved and before it could record it: the crash between charging and
 * answering.
 */
public final class DemoAcquirer implements PaymentBackend {
    private final FileTransactionStore wallet;
    private final long scanMs;
    private final long payingMs;
    private long counter;

    public DemoAcquirer(File walletFile, long scanMs, long payingMs) throws IOException {
        this.wallet = new FileTransactionStore(walletFile);
        this.scanMs = scanMs;
        this.payingMs = payingMs;
        this.counter = wallet.all().size();
    }

    private synchronized String number(String prefix) {
        counter++;
        return prefix + System.currentTimeMillis() + String.format("%06d", counter);
    }

    /** Sleeps, returning early (true) when the bridge cancels. */
    private static boolean waitOrCancel(long ms, Progress p) throws InterruptedException {
        long until = System.currentTimeMillis() + ms;
        while (System.currentTimeMillis() < until) {
            if (p.cancelled()) {
                return true;
            }
            Thread.sleep(10);
        }
        return p.cancelled();
    }

    private Outcome record(String ref, long amount, Outcome o) throws IOException {
        Transaction t = new Transaction();
        t.ref = ref;
        t.op = Transaction.Op.SALE;
        t.amountFen = amount;
        t.status = o.status;
        t.channel = o.channel;
        t.payNo = o.payNo;
        t.code = o.code;
        t.msg = o.msg;
        t.time = new java.text.SimpleDateFormat("yyyyMMddHHmmss").format(new java.util.Date());
        wallet.put(t);
        return o;
    }

    @Override
    public Outcome collect(String ref, long amountFen, String description, Progress p) throws Exception {
        int rule = (int) (amountFen % 100);
        if (rule == 94 || rule == 96) {
            if (rule == 96) {
                p.userPaying();
            }
            while (!p.cancelled()) {
                Thread.sleep(10);
            }
            return record(ref, amountFen, Outcome.cancelled(null, null));
        }
        if (waitOrCancel(scanMs, p)) {
            return record(ref, amountFen, Outcome.cancelled(null, null));
        }
        switch (rule) {
            case 91:
                return record(ref, amountFen, Outcome.failed("AUTH_CODE_INVALID", "付款码无效，请患者刷新付款码"));
            case 92:
                return record(ref, amountFen, Outcome.failed("NOTENOUGH", "余额不足"));
            case 93:
            case 97:
                p.userPaying();
                Thread.sleep(payingMs); // the patient confirms: a cancel now is too late
                break;
            default:
                break;
        }
        String channel = rule == 97 || (rule >= 50 && rule <= 89) ? "ALIPAY" : "WECHAT";
        Outcome paid = record(ref, amountFen, Outcome.paid(channel, number(channel.equals("WECHAT") ? "4200" : "2026")));
        if (rule == 98) {
            Runtime.getRuntime().halt(137);
        }
        return paid;
    }

    @Override
    public Outcome refund(String ref, Transaction original, long amountFen) throws Exception {
        Thread.sleep(scanMs);
        Transaction t = new Transaction();
        t.ref = ref;
        t.op = Transaction.Op.REFUND;
        t.original = original.ref;
        t.amountFen = amountFen;
        t.status = Transaction.Status.REFUNDED;
        t.payNo = number("5030");
        wallet.put(t);
        return Outcome.refunded(t.payNo);
    }

    @Override
    public Outcome reverse(Transaction sale) throws Exception {
        Transaction w = wallet.get(sale.ref);
        if (w == null || w.status != Transaction.Status.PAID) {
            return Outcome.cancelled(null, null);
        }
        w.status = Transaction.Status.REVERSED;
        wallet.put(w);
        return new Outcome(Transaction.Status.REVERSED, w.channel, w.payNo, null, null);
    }

    @Override
    public Outcome query(Transaction t) {
        Transaction w = wallet.get(t.ref);
        if (w == null) {
            return Outcome.notFound();
        }
        return new Outcome(w.status, w.channel, w.payNo, w.code, w.msg);
    }

    /** What the wallet charged: PAID collections, for the tests' exactly-once check. */
    public java.util.List<Transaction> book() {
        return wallet.all();
    }
}
