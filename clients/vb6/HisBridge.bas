Attribute VB_Name = "HisBridge"
' HIS Bridge for a VB6 HIS (docs/his-interface.md section 9). VB6 passes String ByVal as ANSI
' (GBK on a Chinese Windows), so the ...A functions are the ones to declare. Not run here: no VB6
' on the build machines; scripts/check-declarations.py checks the names against the DLL's exports.
Option Explicit

Public Const HB_OK As Long = 0
Public Const HB_PENDING As Long = 1
Public Const HB_ERR_IO As Long = -6

Public Declare Function hisbridge_initA Lib "hisbridge_client.dll" (ByVal KeyFile As String, ByVal Port As Long) As Long
Public Declare Function hisbridge_payA Lib "hisbridge_client.dll" (ByVal TerminalId As String, ByVal OrderNo As String, _
    ByVal RefundNo As String, ByVal Amount As String, ByVal Description As String, ByVal Operator As String, _
    ByVal Response As String, ByVal ResponseSize As Long, ByVal TimeoutMs As Long) As Long
Public Declare Function hisbridge_queryA Lib "hisbridge_client.dll" (ByVal TerminalId As String, ByVal OrderNo As String, _
    ByVal RefundNo As String, ByVal Response As String, ByVal ResponseSize As Long, ByVal TimeoutMs As Long) As Long
Public Declare Function hisbridge_cancelA Lib "hisbridge_client.dll" (ByVal TerminalId As String, ByVal OrderNo As String, _
    ByVal RefundNo As String, ByVal Response As String, ByVal ResponseSize As Long, ByVal TimeoutMs As Long) As Long
Public Declare Function hisbridge_getA Lib "hisbridge_client.dll" (ByVal ResponseJson As String, ByVal Name As String, _
    ByVal OutText As String, ByVal OutSize As Long) As Long

Private Function Field(ByVal Rsp As String, ByVal Name As String) As String
    Dim Buf As String
    Buf = String$(512, vbNullChar)
    If hisbridge_getA(Rsp, Name, Buf, 512) = HB_OK Then Field = Left$(Buf, InStr(Buf, vbNullChar) - 1)
End Function

' A collection ("+12.50", RefundNo "") or a refund ("-3.00", RefundNo "R1"). Returns the DLL's
' code; Status and PayOrderNo from the final result. Never charges again while the outcome is open.
Public Function Pay(ByVal TerminalId As String, ByVal OrderNo As String, ByVal RefundNo As String, _
                    ByVal Amount As String, ByVal Description As String, _
                    ByRef Status As String, ByRef PayOrderNo As String) As Long
    Dim Rsp As String, Rc As Long
    Rsp = String$(4096, vbNullChar)
    Rc = hisbridge_payA(TerminalId, OrderNo, RefundNo, Amount, Description, vbNullString, Rsp, 4096, 120000)
    Do While Rc = HB_PENDING Or Rc = HB_ERR_IO
        Rsp = String$(4096, vbNullChar)
        Rc = hisbridge_queryA(TerminalId, OrderNo, RefundNo, Rsp, 4096, 30000)
    Loop
    Status = Field(Rsp, "status")
    PayOrderNo = Field(Rsp, "pay_order_no")
    Pay = Rc
End Function
