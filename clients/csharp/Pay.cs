// HIS Bridge from C# / .NET Framework 4 (docs/his-interface.md section 9): the UTF-8 entry points
// with byte arrays, so no code page is involved. Build for x86 or x64 to match the DLL.
//   csc Pay.cs  (or Mono: mcs Pay.cs)      Pay.exe KEYFILE PORT
// Run in CI under Mono against the Linux build of the same library (scripts/samples-test.sh).
using System;
using System.Runtime.InteropServices;
using System.Text;

static class HisBridge
{
    const string Dll = "hisbridge_client.dll";
    public const int HB_OK = 0, HB_PENDING = 1, HB_ERR_IO = -6;

    [DllImport(Dll, CallingConvention = CallingConvention.StdCall)]
    public static extern int hisbridge_init(byte[] keyFile, int port);

    [DllImport(Dll, CallingConvention = CallingConvention.StdCall)]
    public static extern int hisbridge_pay(byte[] terminalId, byte[] orderNo, byte[] refundNo, byte[] amount,
        byte[] description, byte[] op, byte[] response, int responseSize, int timeoutMs);

    [DllImport(Dll, CallingConvention = CallingConvention.StdCall)]
    public static extern int hisbridge_query(byte[] terminalId, byte[] orderNo, byte[] refundNo,
        byte[] response, int responseSize, int timeoutMs);

    [DllImport(Dll, CallingConvention = CallingConvention.StdCall)]
    public static extern int hisbridge_cancel(byte[] terminalId, byte[] orderNo, byte[] refundNo,
        byte[] response, int responseSize, int timeoutMs);

    [DllImport(Dll, CallingConvention = CallingConvention.StdCall)]
    public static extern int hisbridge_get(byte[] responseJson, byte[] name, byte[] outText, int outSize);

    public static byte[] Z(string s) { return s == null ? null : Encoding.UTF8.GetBytes(s + "\0"); }

    public static string Text(byte[] b)
    {
        int n = Array.IndexOf(b, (byte)0);
        return Encoding.UTF8.GetString(b, 0, n < 0 ? b.Length : n);
    }

    public static string Field(byte[] rsp, string name)
    {
        var o = new byte[512];
        return hisbridge_get(rsp, Z(name), o, o.Length) == HB_OK ? Text(o) : null;
    }

    /// A collection ("+12.50", refundNo null) or a refund ("-3.00", refundNo "R1"); asks while the
    /// outcome is not known (never charges again). Returns the final result's JSON.
    public static int Pay(string terminal, string orderNo, string refundNo, string amount, string description,
        byte[] rsp)
    {
        int rc = hisbridge_pay(Z(terminal), Z(orderNo), Z(refundNo), Z(amount), Z(description), null, rsp, rsp.Length, 120000);
        while (rc == HB_PENDING || rc == HB_ERR_IO)
            rc = hisbridge_query(Z(terminal), Z(orderNo), Z(refundNo), rsp, rsp.Length, 30000);
        return rc;
    }
}

static class Program
{
    static int Check(bool ok, string what, byte[] rsp)
    {
        Console.WriteLine("{0,-24} {1} {2}", what, ok ? "ok" : "FAILED", HisBridge.Text(rsp));
        return ok ? 0 : 1;
    }

    static int Main(string[] args)
    {
        if (args.Length != 2) { Console.Error.WriteLine("usage: Pay.exe KEYFILE PORT"); return 2; }
        if (HisBridge.hisbridge_init(HisBridge.Z(args[0]), int.Parse(args[1])) != HisBridge.HB_OK)
        { Console.Error.WriteLine("init failed"); return 1; }
        string order = "CS" + DateTime.Now.ToString("HHmmssfff");
        var rsp = new byte[4096];
        int bad = 0;
        int rc = HisBridge.Pay("W01", order, null, "+12.30", "门诊缴费", rsp);
        bad |= Check(rc == 0 && HisBridge.Field(rsp, "status") == "SUCCESS", "collect +12.30", rsp);
        string payNo = HisBridge.Field(rsp, "pay_order_no");
        rc = HisBridge.Pay("W01", order, "R1", "-2.30", "门诊退费", rsp);
        bad |= Check(rc == 0 && HisBridge.Field(rsp, "status") == "REFUNDED", "refund -2.30", rsp);
        rc = HisBridge.hisbridge_query(HisBridge.Z("W01"), HisBridge.Z(order), null, rsp, rsp.Length, 10000);
        bad |= Check(rc == 0 && HisBridge.Field(rsp, "pay_order_no") == payNo, "query", rsp);
        rc = HisBridge.hisbridge_pay(HisBridge.Z("W01"), HisBridge.Z(order + "S"), null, HisBridge.Z("+5.94"),
            null, null, rsp, rsp.Length, 1500);
        bad |= Check(rc == HisBridge.HB_PENDING, "collect, patient away", rsp);
        rc = HisBridge.hisbridge_cancel(HisBridge.Z("W01"), HisBridge.Z(order + "S"), null, rsp, rsp.Length, 30000);
        bad |= Check(rc == 0 && HisBridge.Field(rsp, "status") == "CANCELLED", "cancel", rsp);
        Console.WriteLine(bad == 0 ? "csharp: all ok" : "csharp: FAILED");
        return bad;
    }
}
