; Inno Setup 6 script: the Windows installer for the PyInstaller bundle.
; Build the bundle first (python packaging/build.py --bundle-only), then from the repository root:
;   iscc /DAppVersion=<uploader.__version__> packaging\windows\uploader.iss
; Installs per machine or per user (the person chooses), adds a Start-menu entry,
; "Open with Uploader" for every file type, and an uninstaller. Never touches the library.

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=X.Y.Z (from uploader/__init__.py)
#endif
#define Bundle "..\..\build\package\pyinstaller\uploader"
#define Icons "..\..\build\package\icons"

[Setup]
AppId={{5B8E4F0C-2D7A-4C61-9A3E-7F1B6D2C8E94}
AppName=Uploader
AppVersion={#AppVersion}
AppVerName=Uploader {#AppVersion}
AppPublisher=Uploader developers
VersionInfoVersion={#AppVersion}
DefaultDirName={autopf}\Uploader
DefaultGroupName=Uploader
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir=..\..\dist
OutputBaseFilename=Uploader-{#AppVersion}-windows-x64-setup
SetupIconFile={#Icons}\uploader.ico
UninstallDisplayIcon={app}\uploaderw.exe
UninstallDisplayName=Uploader {#AppVersion}
ChangesAssociations=yes
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
; Signing (see packaging/README.md): pass /Ssigntool="signtool sign /fd sha256 /tr ... $f"
; to iscc and uncomment:
;SignTool=signtool

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#Bundle}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Uploader"; Filename: "{app}\uploaderw.exe"; Comment: "Put documents away safely"
Name: "{autodesktop}\Uploader"; Filename: "{app}\uploaderw.exe"; Tasks: desktopicon

[Registry]
; "Open with Uploader": the application's registration, offered for every file type.
Root: HKA; Subkey: "Software\Classes\Applications\uploaderw.exe"; ValueType: string; ValueName: "FriendlyAppName"; ValueData: "Uploader"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\Applications\uploaderw.exe\DefaultIcon"; ValueType: string; ValueData: """{app}\uploaderw.exe"",0"
Root: HKA; Subkey: "Software\Classes\Applications\uploaderw.exe\shell\open\command"; ValueType: string; ValueData: """{app}\uploaderw.exe"" ""%1"""
Root: HKA; Subkey: "Software\Classes\*\OpenWithList\uploaderw.exe"; Flags: uninsdeletekey
; "Add to Uploader" in the context menu of every file.
Root: HKA; Subkey: "Software\Classes\*\shell\Uploader"; ValueType: string; ValueData: "Add to Uploader"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\*\shell\Uploader"; ValueType: string; ValueName: "Icon"; ValueData: """{app}\uploaderw.exe"",0"
Root: HKA; Subkey: "Software\Classes\*\shell\Uploader\command"; ValueType: string; ValueData: """{app}\uploaderw.exe"" ""%1"""

[Run]
Filename: "{app}\uploaderw.exe"; Description: "{cm:LaunchProgram,Uploader}"; Flags: nowait postinstall skipifsilent
