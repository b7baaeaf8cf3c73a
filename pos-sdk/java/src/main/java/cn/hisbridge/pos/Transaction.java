package cn.hisbridge.pos;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The POS's durable record of one transaction, by its {@code ref} (§4.1): what QUERY answers,
 * before and after an app restart. Written to the {@link TransactionStore} before the payment
 * backend is asked to do anything, so a reference is executed at most once.
 */
public final class Transaction implements Cloneable {
    public enum Op { SALE, REFUND }

    /** §4.5. NOT_FOUND is never stored. */
    public enum Status {
        IN_PROGRESS, PAID, REFUNDED, FAILED, CANCELLED, REVERSED;

        public boolean isFinal() {
            return this != IN_PROGRESS;
        }
    }

    public String ref;
    public Op op;
    public long amountFen;
    /** A refund's collection ({@code orig}). */
    public String original;
    public String description;
    public Status status = Status.IN_PROGRESS;
    /** WECHAT, ALIPAY or OTHER. */
    public String channel;
    /** transaction_id / trade_no, or the refund id. */
    public String payNo;
    /** The wallet's or the POS's code and message for a failure or a POS-side cancel. */
    public String code;
    public String msg;
    /** POS clock {@code yyyyMMddHHmmss}: when it became final (or started). */
    public String time;

    public Transaction copy() {
        try {
            return (Transaction) clone();
        } catch (CloneNotSupportedException e) {
            throw new AssertionError(e);
        }
    }

    /** The RESULT that reports this transaction (§4.3, §4.5). */
    public Message result() {
        Message m = new Message("RESULT").put("ref", ref).put("op", op).put("status", status);
        if (status == Status.PAID || status == Status.REVERSED || status == Status.REFUNDED) {
            m.put("channel", channel).put("pay_no", payNo);
        }
        m.put("amount", amountFen);
        if (status.isFinal()) {
            m.put("time", time);
        }
        return m.put("code", code).put("msg", msg);
    }

    /** One line for the store: {@code key=value} pairs separated by |, values cleaned. */
    String toLine() {
        Map<String, Object> f = new LinkedHashMap<>();
        f.put("ref", ref);
        f.put("op", op);
        f.put("amount", amountFen);
        f.put("orig", original);
        f.put("desc", description);
        f.put("status", status);
        f.put("channel", channel);
        f.put("pay_no", payNo);
        f.put("code", code);
        f.put("msg", msg);
        f.put("time", time);
        Message m = new Message("TXN");
        for (Map.Entry<String, Object> e : f.entrySet()) {
            m.put(e.getKey(), e.getValue());
        }
        return m.encode();
    }

    static Transaction fromLine(String line) {
        Message m = Message.decode(line);
        if (!"TXN".equals(m.command) || m.get("ref") == null || m.get("op") == null || m.get("status") == null) {
            throw new IllegalArgumentException("not a transaction line");
        }
        Transaction t = new Transaction();
        t.ref = m.get("ref");
        t.op = Op.valueOf(m.get("op"));
        t.amountFen = m.getLong("amount");
        t.original = m.get("orig");
        t.description = m.get("desc");
        t.status = Status.valueOf(m.get("status"));
        t.channel = m.get("channel");
        t.payNo = m.get("pay_no");
        t.code = m.get("code");
        t.msg = m.get("msg");
        t.time = m.get("time");
        return t;
    }
}
