{ HIS Bridge for a 32-bit Delphi HIS (docs/his-interface.md section 9).
  Not run here: no Delphi on the build machines; scripts/check-declarations.py checks the names
  against the DLL's exports. Delphi 7's PChar is ANSI (GBK on a Chinese Windows); from Delphi
  2009 on, keep PAnsiChar and pass AnsiString values. }
unit HisBridge;

interface

const
  HB_OK = 0;
  HB_PENDING = 1;
  HB_ERR_IO = -6;
  HisBridgeDll = 'hisbridge_client.dll';

function hisbridge_initA(KeyFile: PAnsiChar; Port: Integer): Integer; stdcall; external HisBridgeDll;
function hisbridge_payA(TerminalId, OrderNo, RefundNo, Amount, Description, Operator: PAnsiChar;
  Response: PAnsiChar; ResponseSize, TimeoutMs: Integer): Integer; stdcall; external HisBridgeDll;
function hisbridge_queryA(TerminalId, OrderNo, RefundNo: PAnsiChar; Response: PAnsiChar;
  ResponseSize, TimeoutMs: Integer): Integer; stdcall; external HisBridgeDll;
function hisbridge_cancelA(TerminalId, OrderNo, RefundNo: PAnsiChar; Response: PAnsiChar;
  ResponseSize, TimeoutMs: Integer): Integer; stdcall; external HisBridgeDll;
function hisbridge_getA(ResponseJson, Name: PAnsiChar; OutText: PAnsiChar; OutSize: Integer): Integer;
  stdcall; external HisBridgeDll;
function hisbridge_strerror(Code: Integer): PAnsiChar; stdcall; external HisBridgeDll;

{ A collection ('+12.50', RefundNo '') or a refund ('-3.00', RefundNo 'R1'): waits for the final
  result, asking while it is not known (never charging again). Returns the DLL's code; Status and
  PayOrderNo from the result. }
function Pay(const TerminalId, OrderNo, RefundNo, Amount, Description, Operator: AnsiString;
  out Status, PayOrderNo, Message: AnsiString): Integer;

implementation

function Field(const Rsp: array of AnsiChar; const Name: AnsiString): AnsiString;
var Buf: array[0..511] of AnsiChar;
begin
  if hisbridge_getA(@Rsp[0], PAnsiChar(Name), Buf, SizeOf(Buf)) = HB_OK then
    Result := AnsiString(PAnsiChar(@Buf[0]))
  else
    Result := '';
end;

function Opt(const S: AnsiString): PAnsiChar;
begin
  if S = '' then Result := nil else Result := PAnsiChar(S);
end;

function Pay(const TerminalId, OrderNo, RefundNo, Amount, Description, Operator: AnsiString;
  out Status, PayOrderNo, Message: AnsiString): Integer;
var Rsp: array[0..4095] of AnsiChar;
begin
  Result := hisbridge_payA(PAnsiChar(TerminalId), PAnsiChar(OrderNo), Opt(RefundNo), PAnsiChar(Amount),
    Opt(Description), Opt(Operator), Rsp, SizeOf(Rsp), 120000);
  while (Result = HB_PENDING) or (Result = HB_ERR_IO) do
    Result := hisbridge_queryA(PAnsiChar(TerminalId), PAnsiChar(OrderNo), Opt(RefundNo), Rsp, SizeOf(Rsp), 30000);
  Status := Field(Rsp, 'status');
  PayOrderNo := Field(Rsp, 'pay_order_no');
  Message := Field(Rsp, 'error_message');
end;

end.
